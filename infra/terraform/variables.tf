variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the bucket, the Cloud Run job and the scheduler."
  type        = string
  default     = "europe-west1"
}

variable "bucket_name" {
  description = "The bucket of the store (gs://BUCKET/PREFIX in dropload.toml)."
  type        = string
}

variable "store_prefix" {
  description = "The store's prefix inside the bucket, without slashes."
  type        = string
  default     = "dropload"
}

variable "tables" {
  description = "Table keys of dropload.toml ([tables.NAME]); each gets a staging prefix."
  type        = list(string)
}

variable "dataset_id" {
  description = "BigQuery dataset the tables load into."
  type        = string
}

variable "bigquery_location" {
  description = "Location of the dataset and of the load jobs."
  type        = string
  default     = "EU"
}

variable "archive_nearline_days" {
  description = "Archived shards move to Nearline after this many days (replays still read them)."
  type        = number
  default     = 30
}

variable "archive_retention_days" {
  description = "Archived shards and manifests are deleted after this many days: the replay horizon."
  type        = number
  default     = 400
}

variable "abandoned_batch_days" {
  description = "Objects left in a batch folder this long belong to a batch no tick finished; they move to Nearline (never deleted: they hold unloaded records)."
  type        = number
  default     = 14
}

variable "image" {
  description = "Container image built from infra/Dockerfile."
  type        = string
}

variable "config_toml" {
  description = "Contents of dropload.toml for the loader (kept in Secret Manager)."
  type        = string
  sensitive   = true
}

variable "schedule" {
  description = "Cron schedule of `loader run-once`; the tick interval."
  type        = string
  default     = "*/15 * * * *"
}
