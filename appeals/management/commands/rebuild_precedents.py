"""Rebuild the precedent index from the database (the index is a cache; this is its source)."""

from django.core.management.base import BaseCommand, CommandError

from appeals.precedents import index as precedent_index
from appeals.precedents import services


class Command(BaseCommand):
    help = (
        "Rebuild the precedent (similar decided cases) index from the database: every stored "
        "embedding of the current model whose item has a decided case. Writes "
        "PRECEDENTS_INDEX_DIR/precedents.usearch and its sidecar atomically. With "
        "--embed-missing, first embeds the items that have no embedding yet (on this machine's "
        "CPU, in batches)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--embed-missing",
            action="store_true",
            help="embed items without an embedding of the current model before rebuilding",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=services.BATCH_SIZE,
            help=f"items per model call with --embed-missing (default {services.BATCH_SIZE})",
        )

    def handle(self, *args, embed_missing=False, batch_size=services.BATCH_SIZE, **options):
        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, not {batch_size}")
        if embed_missing:
            missing = services.missing_item_ids()
            stored = 0
            for start in range(0, len(missing), batch_size):
                stored += services.embed_items(missing[start : start + batch_size])
            self.stdout.write(f"Embedded {stored} of {len(missing)} items without an embedding.")
        try:
            rebuilt = precedent_index.rebuild()
        except OSError as error:
            raise CommandError(
                f"could not write the index to {precedent_index.index_dir()}: {error}"
            ) from error
        precedent_index.forget()
        self.stdout.write(
            f"Rebuilt the precedent index: {len(rebuilt)} decided items, written to "
            f"{precedent_index.index_dir() / precedent_index.INDEX_FILE}."
        )
