# `loader run-once` as a Cloud Run job, started by Cloud Scheduler every tick.
# Two overlapping runs are safe: each table's lease lets one loader work on it.

resource "google_secret_manager_secret" "config" {
  secret_id = "dropload-config"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "config" {
  secret      = google_secret_manager_secret.config.id
  secret_data = var.config_toml
}

resource "google_cloud_run_v2_job" "loader" {
  name     = "dropload-loader"
  location = var.region

  template {
    task_count = 1
    template {
      service_account = google_service_account.loader.email
      max_retries     = 0
      timeout         = "3600s"
      containers {
        image = var.image
        args  = ["--config", "/etc/dropload/dropload.toml", "--log-format", "json", "run-once"]
        volume_mounts {
          name       = "config"
          mount_path = "/etc/dropload"
        }
      }
      volumes {
        name = "config"
        secret {
          secret = google_secret_manager_secret.config.secret_id
          items {
            version = "latest"
            path    = "dropload.toml"
          }
        }
      }
    }
  }
}

resource "google_cloud_scheduler_job" "tick" {
  name      = "dropload-tick"
  region    = var.region
  schedule  = var.schedule
  time_zone = "Etc/UTC"

  http_target {
    http_method = "POST"
    uri         = "https://${var.region}-run.googleapis.com/apis/run.googleapis.com/v1/namespaces/${var.project}/jobs/${google_cloud_run_v2_job.loader.name}:run"
    oauth_token {
      service_account_email = google_service_account.scheduler.email
    }
  }
}

output "writer_service_account" {
  description = "Give this identity to the processes that stage records."
  value       = google_service_account.writer.email
}

output "store_url" {
  description = "store.url of dropload.toml."
  value       = "gs://${google_storage_bucket.store.name}/${var.store_prefix}"
}
