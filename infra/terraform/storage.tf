resource "google_storage_bucket" "store" {
  name                        = var.bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # Archived shards: cheaper storage while replays may still want them ...
  lifecycle_rule {
    condition {
      age            = var.archive_nearline_days
      matches_prefix = [for t in var.tables : "${var.store_prefix}/${t}/archive/"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  # ... then gone after the replay horizon.
  lifecycle_rule {
    condition {
      age            = var.archive_retention_days
      matches_prefix = [for t in var.tables : "${var.store_prefix}/${t}/archive/"]
    }
    action {
      type = "Delete"
    }
  }

  # Abandoned batch folders hold claimed, unloaded records: cheaper storage
  # while an operator looks (dropload_open_batches alerts first), never deleted.
  lifecycle_rule {
    condition {
      age            = var.abandoned_batch_days
      matches_prefix = [for t in var.tables : "${var.store_prefix}/${t}/batches/"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
}
