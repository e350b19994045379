"""`python manage.py up`: the whole product in one command.

Migrates, makes sure an admin can sign in, then runs the web server, Celery workers, beat and
the model worker. Embedded mode (no REDIS_URL) runs them in this process; server mode runs the
Procfile's processes as children. Ctrl-C stops everything it started.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from webapp.accounts.services import ensure_admin_account


class Command(BaseCommand):
    help = "Run Autodidact: migrations, admin account, web server, workers, beat and model worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-beat", action="store_true", help="do not run the periodic scheduler")
        parser.add_argument("--verbose", action="store_true",
                            help="show INFO logs in the terminal too (embedded mode shows warnings only)")

    def handle(self, *args, host, port, no_beat, verbose, **options):
        started = time.monotonic()
        if verbose:
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    handler.setLevel(logging.INFO)
        self._ensure_port_free(host, port)
        call_command("migrate", interactive=False, verbosity=0)
        created = ensure_admin_account()
        if created:
            if created.generated:
                self.stdout.write(self.style.WARNING(
                    f"Created admin account '{created.username}' with password: {created.password}\n"
                    "  (shown only this once; change it under Admin > Users)"
                ))
            else:
                self.stdout.write(f"Created admin account '{created.username}' "
                                  "(password from AUTODIDACT_ADMIN_PASSWORD)")
        url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}/"
        if settings.EMBEDDED:
            self._run_embedded(host, port, url, started, with_beat=not no_beat)
        else:
            sys.exit(self._run_server_mode(host, port, url, started, with_beat=not no_beat))

    @staticmethod
    def _ensure_port_free(host: str, port: int) -> None:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise CommandError(f"cannot listen on {host}:{port} ({exc.strerror}); "
                                   "stop what uses it or pass --port") from None

    def _announce(self, url: str, started: float, mode: str) -> None:
        self.stdout.write(self.style.SUCCESS(
            f"Autodidact is up at {url}  ({mode}; ready in {time.monotonic() - started:.1f} s; Ctrl-C stops)"
        ))
        self.stdout.flush()

    def _run_embedded(self, host, port, url, started, with_beat: bool) -> None:
        # Importing daphne.server installs Twisted's asyncio reactor: do it before anything else.
        from daphne.server import Server

        from webapp.asgi import application
        from webapp.core.embedded import EmbeddedWorkers
        from webapp.core.requeue import requeue_left_runs

        workers = EmbeddedWorkers(with_beat=with_beat)
        workers.start()
        self.stdout.write("Embedded mode: SQLite, in-memory channel layer, in-process Celery workers "
                          f"({', '.join(spec.name for spec in workers.specs)}) and beat. Set REDIS_URL for server mode.")
        left = requeue_left_runs()
        if left:
            self.stdout.write("Queued before this start, sent to the workers again: "
                              + ", ".join(f"{count} {kind}" for kind, count in left.items()))
        server = Server(
            application=application,
            endpoints=[f"tcp:port={port}:interface={host}"],
            signal_handlers=True,
            ready_callable=lambda: self._announce(url, started, "embedded mode"),
        )
        # Ctrl-C and SIGTERM stop the site alike, even when a script started it in the background
        # with SIGINT ignored (Twisted only takes over a SIGINT that still has Python's default).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            server.run()
        finally:
            self.stdout.write("Stopping workers...")
            workers.stop()
            self.stdout.write("Stopped.")

    def _run_server_mode(self, host, port, url, started, with_beat: bool) -> int:
        from webapp.core.supervisor import Supervisor, read_procfile

        commands = read_procfile(Path(settings.BASE_DIR) / "Procfile")
        commands.pop("release", None)  # migrations already ran above
        if settings.AUTODIDACT_CHAT_QUEUE != "chat":
            commands.pop("worker-chat", None)  # chat replies share the gpu worker
        if not with_beat:
            commands.pop("beat", None)
        # The children's executables (daphne, celery) live beside this interpreter.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {**os.environ, "HOST": host, "PORT": str(port), "PYTHONUNBUFFERED": "1", "PATH": path}
        supervisor = Supervisor(commands, env)
        signal.signal(signal.SIGINT, supervisor.request_stop)
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        supervisor.start()
        if self._wait_for_port(host, port, timeout=60, supervisor=supervisor):
            self._announce(url, started, "server mode: Procfile processes")
        code = supervisor.wait()
        self.stdout.write("Stopped.")
        return code

    @staticmethod
    def _wait_for_port(host, port, timeout, supervisor) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not supervisor.stopping:
            try:
                with socket.create_connection((host if host != "0.0.0.0" else "127.0.0.1", port), 0.5):
                    return True
            except OSError:
                time.sleep(0.2)
        return False
