"""Deliveries through a real Celery worker on Redis, and recovery from a worker that died."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.delivery import services, tasks
from apps.delivery.models import DeliveryRun, Destination, RunState
from apps.roster.models import RosterOutbox, RosterVersion, Source
from portal.celery import app
from tests.conftest import wait_for


def test_the_beat_schedule_has_the_relay_the_tick_the_purge_and_the_source_poll():
    schedule = app.conf.beat_schedule
    for name in ("delivery.outbox_relay", "delivery.schedule_tick", "delivery.bundles_purge",
                 "delivery.sources_poll"):
        assert schedule[name]["task"] == name and name in app.tasks


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_relays_an_applied_version_and_delivers_it(celery_worker,
                                                                  sftp_destination):
    version = RosterVersion.objects.create(number=1, source=Source.objects.create(name="s"))
    RosterOutbox.objects.create(version=version)

    tasks.outbox_relay.delay()

    run = wait_for(lambda: DeliveryRun.objects.filter(
        destination=sftp_destination, state=RunState.DELIVERED).first())
    assert run.version_to == 1 and run.mode == "bulk"
    assert [p.name for p in Path(sftp_destination.sftp_directory).iterdir()] == [run.remote_name]


@pytest.mark.django_db
def test_a_run_left_mid_delivery_by_a_dead_worker_completes_once_with_one_file(
    sftp_destination
):
    # given: a worker rendered the bundle, started uploading and died (its .part remains)
    run, _ = services.delivery_run_enqueue(destination=sftp_destination)
    bundle, _ = services.bundle_render(
        destination=sftp_destination, release=services.release_for(sftp_destination.integration),
        mode="bulk", since=None, until=0)
    DeliveryRun.objects.filter(pk=run.pk).update(state=RunState.DELIVERING, bundle=bundle,
                                                 attempts=1)
    folder = Path(sftp_destination.sftp_directory)
    name = services.remote_name_for(sftp_destination, bundle)
    (folder / f".{name}.deadbeef.part").write_bytes(b"half a fi")

    # when: the broker redelivers the task (acks late), twice for good measure
    tasks.destination_drain.delay(sftp_destination.pk)
    tasks.destination_drain.delay(sftp_destination.pk)

    # then
    run.refresh_from_db()
    assert run.state == RunState.DELIVERED and run.attempts == 2
    assert [p.name for p in folder.iterdir()] == [name]
    assert DeliveryRun.objects.filter(destination=sftp_destination).count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_leaves_a_run_that_completes_once(
    redis_url, sftp_destination, running_sshd, settings, tmp_path
):
    """A real worker process is SIGKILLed while it waits on the SFTP server; the run is then
    carried on by the next tick, delivered once, with one file on the far side."""
    import os
    import signal
    import subprocess
    import sys

    from django.db import connection

    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{database['USER']}@{database['HOST']}:{database['PORT']}"
                        f"/{database['NAME']}",
        "REDIS_URL": redis_url,
        "INTERCHANGE_MASTER_KEY": settings.INTERCHANGE_MASTER_KEY,
        "INTERCHANGE_VAR_DIR": str(Path(settings.INTERCHANGE_STAGING_DIR).parent),
    }
    # given: the SFTP server stops answering (frozen), so the worker hangs mid-delivery
    os.kill(running_sshd.process.pid, signal.SIGSTOP)
    worker = subprocess.Popen(  # noqa: S603
        [str(Path(sys.executable).parent / "celery"), "-A", "portal", "worker", "-P", "solo",
         "--without-heartbeat", "--without-gossip", "--without-mingle",
         "--loglevel", "WARNING"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "wb"),  # noqa: SIM115
    )
    try:
        run, _ = services.delivery_run_enqueue(destination=sftp_destination)
        tasks.destination_drain.delay(sftp_destination.pk)
        try:
            wait_for(lambda: DeliveryRun.objects.filter(pk=run.pk,
                                                        state=RunState.DELIVERING).exists(),
                     timeout=60)
        except AssertionError:
            raise AssertionError((tmp_path / "worker.log").read_text()[-3000:]) from None

        # when: the worker is killed, the server comes back, and the tick runs
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        os.kill(running_sshd.process.pid, signal.SIGCONT)
        if worker.poll() is None:
            worker.kill()
    assert DeliveryRun.objects.get(pk=run.pk).state == RunState.DELIVERING  # stranded

    def tick() -> bool:
        for destination_id in services.destinations_schedule_due():
            services.destination_drain(destination=Destination.objects.get(pk=destination_id))
        return DeliveryRun.objects.get(pk=run.pk).state == RunState.DELIVERED

    wait_for(tick, timeout=30)  # the dead worker's lock goes with its connection

    # then
    run.refresh_from_db()
    assert run.attempts == 2
    assert [p.name for p in Path(sftp_destination.sftp_directory).iterdir()] == [run.remote_name]
    assert DeliveryRun.objects.filter(destination=sftp_destination).count() == 1
