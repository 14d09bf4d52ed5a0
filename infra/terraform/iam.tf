# Two identities: writers (stagers) may only create objects under a table's
# staging/ prefix; the loader moves objects in the store and runs load jobs.

resource "google_service_account" "writer" {
  account_id   = "dropload-writer"
  display_name = "dropload writers: create staged shards only"
}

resource "google_service_account" "loader" {
  account_id   = "dropload-loader"
  display_name = "dropload loader: claim, load, archive"
}

resource "google_service_account" "scheduler" {
  account_id   = "dropload-scheduler"
  display_name = "dropload scheduler: starts the loader's Cloud Run job"
}

# create: write a shard (ifGenerationMatch=0, so never an overwrite);
# get: tell an own retried upload from a name clash.
resource "google_project_iam_custom_role" "writer" {
  role_id     = "droploadWriter"
  title       = "dropload writer"
  permissions = ["storage.objects.create", "storage.objects.get"]
}

# Moves are copy + delete; the lease and intents are rewritten in place.
resource "google_project_iam_custom_role" "loader_objects" {
  role_id = "droploadLoaderObjects"
  title   = "dropload loader: objects of the store"
  permissions = [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
    "storage.objects.update",
  ]
}

# Counting every tool's load jobs into a table (the budget) needs listAll.
resource "google_project_iam_custom_role" "loader_jobs" {
  role_id     = "droploadLoaderJobs"
  title       = "dropload loader: see the project's load jobs"
  permissions = ["bigquery.jobs.get", "bigquery.jobs.list", "bigquery.jobs.listAll"]
}

resource "google_storage_bucket_iam_member" "writer_staging" {
  bucket = google_storage_bucket.store.name
  role   = google_project_iam_custom_role.writer.id
  member = "serviceAccount:${google_service_account.writer.email}"

  condition {
    title       = "staging-only"
    description = "Only objects under <prefix>/<table>/staging/"
    expression = join(" || ", [
      for t in var.tables :
      "resource.name.startsWith(\"projects/_/buckets/${var.bucket_name}/objects/${var.store_prefix}/${t}/staging/\")"
    ])
  }
}

resource "google_storage_bucket_iam_member" "loader_objects" {
  bucket = google_storage_bucket.store.name
  role   = google_project_iam_custom_role.loader_objects.id
  member = "serviceAccount:${google_service_account.loader.email}"
}

resource "google_project_iam_member" "loader_job_user" {
  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.loader.email}"
}

resource "google_project_iam_member" "loader_job_lister" {
  project = var.project
  role    = google_project_iam_custom_role.loader_jobs.id
  member  = "serviceAccount:${google_service_account.loader.email}"
}

resource "google_bigquery_dataset_iam_member" "loader_data_editor" {
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.loader.email}"
}

resource "google_secret_manager_secret_iam_member" "loader_config" {
  secret_id = google_secret_manager_secret.config.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.loader.email}"
}

resource "google_cloud_run_v2_job_iam_member" "scheduler_invoker" {
  name     = google_cloud_run_v2_job.loader.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}
