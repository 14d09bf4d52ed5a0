"""Cloud Storage and BigQuery emulators for the tests, with the shims they need."""
