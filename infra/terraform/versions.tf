# dropload on Google Cloud: the bucket, the dataset, two service accounts and a
# Cloud Run job that Cloud Scheduler starts (`loader run-once`) every tick.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.20"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
