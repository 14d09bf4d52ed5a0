resource "google_bigquery_dataset" "warehouse" {
  dataset_id                 = var.dataset_id
  location                   = var.bigquery_location
  delete_contents_on_destroy = false
}
