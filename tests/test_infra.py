"""infra/: the Terraform parsed with python-hcl2, and the other deployment files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2
import pytest

INFRA = Path(__file__).resolve().parents[1] / "infra"
TERRAFORM = INFRA / "terraform"


def _clean(node: Any) -> Any:
    """hcl2's tree with quotes stripped and its bookkeeping keys dropped."""
    if isinstance(node, dict):
        return {
            _unquote(k): _clean(v) for k, v in node.items() if not k.startswith("__")
        }
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return _unquote(node) if isinstance(node, str) else node


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


@pytest.fixture(scope="module")
def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource of infra/terraform by (type, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            tree = _clean(hcl2.load(handle))
        for block in tree.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    found[(kind, name)] = body
    return found


def _of_kind(resources: dict[tuple[str, str], Any], kind: str) -> list[dict[str, Any]]:
    return [body for (k, _), body in resources.items() if k == kind]


def _bindings(resources: dict[tuple[str, str], Any]) -> list[dict[str, Any]]:
    return [body for (k, _), body in resources.items() if k.endswith("_iam_member")]


def test_the_bucket_has_uniform_access_and_no_public_access(
    resources: dict[tuple[str, str], Any],
) -> None:
    """The store's bucket uses uniform bucket-level access and blocks public access."""
    bucket = resources[("google_storage_bucket", "store")]

    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"


def test_lifecycle_rules_keep_the_archive_and_never_delete_batches(
    resources: dict[tuple[str, str], Any],
) -> None:
    """Archive: Nearline, then deleted at the retention; batches: Nearline only."""
    rules = resources[("google_storage_bucket", "store")]["lifecycle_rule"]
    by_prefix: dict[str, list[tuple[str, str]]] = {}
    for rule in rules:
        (condition,), (action,) = rule["condition"], rule["action"]
        folder = "archive" if "/archive/" in condition["matches_prefix"] else "batches"
        by_prefix.setdefault(folder, []).append((action["type"], condition["age"]))

    assert sorted(by_prefix["archive"]) == [
        ("Delete", "${var.archive_retention_days}"),
        ("SetStorageClass", "${var.archive_nearline_days}"),
    ]
    assert by_prefix["batches"] == [("SetStorageClass", "${var.abandoned_batch_days}")]


def test_writers_may_only_create_objects_under_staging(
    resources: dict[tuple[str, str], Any],
) -> None:
    """The writer's one binding: create/get, conditioned on the staging prefix."""
    writer = "google_service_account.writer.email"
    (binding,) = [b for b in _bindings(resources) if writer in b["member"]]
    role = resources[("google_project_iam_custom_role", "writer")]

    assert binding["role"] == "${google_project_iam_custom_role.writer.id}"
    assert sorted(role["permissions"]) == [
        "storage.objects.create",
        "storage.objects.get",
    ]
    (condition,) = binding["condition"]
    assert "resource.name.startsWith" in condition["expression"]
    assert "/${t}/staging/" in condition["expression"]


def test_the_loader_moves_objects_and_runs_load_jobs(
    resources: dict[tuple[str, str], Any],
) -> None:
    """The loader: object moves on the bucket, job user, its dataset, job listing."""
    loader = "google_service_account.loader.email"
    roles = sorted(b["role"] for b in _bindings(resources) if loader in b["member"])
    objects = resources[("google_project_iam_custom_role", "loader_objects")]

    assert roles == sorted(
        [
            "${google_project_iam_custom_role.loader_objects.id}",
            "${google_project_iam_custom_role.loader_jobs.id}",
            "roles/bigquery.dataEditor",
            "roles/bigquery.jobUser",
            "roles/secretmanager.secretAccessor",
        ]
    )
    assert {"storage.objects.create", "storage.objects.delete"} <= set(
        objects["permissions"]
    )
    assert not any(p.startswith("storage.buckets.") for p in objects["permissions"])


def test_no_binding_is_broad_or_public(resources: dict[tuple[str, str], Any]) -> None:
    """No owner/editor/admin roles and no allUsers anywhere."""
    for binding in _bindings(resources):
        assert binding["role"] not in ("roles/owner", "roles/editor")
        assert "admin" not in binding["role"].lower()
        assert "allUsers" not in binding["member"]
        assert "allAuthenticatedUsers" not in binding["member"]


def test_cloud_scheduler_starts_the_run_once_job(
    resources: dict[tuple[str, str], Any],
) -> None:
    """The Cloud Run job runs `loader run-once`; the scheduler calls its :run."""
    job = resources[("google_cloud_run_v2_job", "loader")]
    scheduler = resources[("google_cloud_scheduler_job", "tick")]
    (outer,) = job["template"]
    (inner,) = outer["template"]
    (container,) = inner["containers"]
    (target,) = scheduler["http_target"]

    assert container["args"][-1] == "run-once"
    assert inner["service_account"] == "${google_service_account.loader.email}"
    assert target["uri"].endswith("/jobs/${google_cloud_run_v2_job.loader.name}:run")
    assert scheduler["schedule"] == "${var.schedule}"


def test_the_examples_run_the_loader() -> None:
    """Dockerfile, crontab, systemd service and timer all run `loader run-once`."""
    dockerfile = (INFRA / "Dockerfile").read_text()
    crontab = [
        line
        for line in (INFRA / "crontab").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    service = (INFRA / "systemd" / "dropload-loader.service").read_text()
    timer = (INFRA / "systemd" / "dropload-loader.timer").read_text()

    assert 'ENTRYPOINT ["loader"]' in dockerfile
    assert "USER dropload" in dockerfile
    (line,) = crontab
    assert line.split()[:5] == ["*/15", "*", "*", "*", "*"]
    assert line.split()[5].endswith("/loader")
    assert "run-once" in line
    assert "ExecStart=/opt/dropload/.venv/bin/loader" in service
    assert "run-once" in service
    assert "OnCalendar=*:0/15" in timer
    assert "Unit=dropload-loader.service" in timer
