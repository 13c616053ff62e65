"""Benchmark settings: the production settings plus one bare view to compare against."""

from integrations_project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"
