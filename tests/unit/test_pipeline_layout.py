"""Which services run where with JETPOST_PIPELINE_WORKERS (services.cli.pipeline_workers),
and the Go threads an embedded nats-server gets (shared.embedded.go_procs)."""

from __future__ import annotations

import os

import pytest

from services.cli.pipeline_workers import child_env, layout
from shared.embedded import go_procs
from shared.settings import load_settings

PIPELINE = ["intake", "renderer", "sender", "bulk_lane"]


def test_one_process_runs_everything_itself() -> None:
    assert layout(PIPELINE, 1) == (PIPELINE, [])


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_the_sender_runs_apart_from_the_others(workers: int) -> None:
    here, children = layout(PIPELINE, workers)
    assert here == ["intake", "renderer", "bulk_lane"]
    assert children == ["sender"]


@pytest.mark.parametrize("names", [["intake", "renderer"], ["sender"]])
def test_without_another_service_to_leave_every_process_runs_the_same(names: list[str]) -> None:
    assert layout(names, 3) == (names, names)


def test_no_pipeline_service_means_no_workers() -> None:
    assert layout([], 4) == ([], [])


def test_go_procs_takes_the_setting_then_the_environment_then_half_the_cpus() -> None:
    assert go_procs(3, {"GOMAXPROCS": "5"}) == "3"
    assert go_procs(0, {"GOMAXPROCS": " 5 "}) == "5"
    half = str(max(1, (os.cpu_count() or 1) // 2))
    for unusable in ({}, {"GOMAXPROCS": ""}, {"GOMAXPROCS": "0"}, {"GOMAXPROCS": "all"}):
        assert go_procs(0, unusable) == half


def test_each_worker_serves_its_metrics_on_the_next_port() -> None:
    environ = {"JETPOST_METRICS_PORT": "9100", "PATH": "/bin"}
    for port, k, expected in ((9100, 1, "9101"), (9100, 3, "9103"), (0, 2, "0")):
        settings = load_settings(metrics_port=port)
        env = child_env(settings, environ, k)
        assert env["JETPOST_METRICS_PORT"] == expected
        assert env["JETPOST_PIPELINE_WORKERS"] == "1" and env["PATH"] == "/bin"
    assert "JETPOST_METRICS_PORT" not in child_env(load_settings(), environ, 1)
    assert "JETPOST_METRICS_PORT" not in child_env(load_settings(metrics_port=65535), environ, 1)
