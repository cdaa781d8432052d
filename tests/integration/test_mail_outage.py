"""A mail outage never fails a signup, and nothing accepted is lost.

The mail API is the SendGrid look-alike of test_auth_recovery.py. While it
is down (not listening, then answering 503) signups still answer 201; the
mailer retries with backoff and the mails arrive once the API answers 202
again. With no API key the mails wait in the outbox, across a restart, until
a process with a key sends them.
"""

import re
import time

import pytest

from conftest import LOW_ARGON2, bin_path, signup, stop_all, unique_email, wait_status
from test_auth_recovery import MAIL_KEY, PUBLIC_URL, MailServer, link_token

PASSWORD = "Outage-test-pw 1"

# This module's own topics and databases: no auth process of another module
# (with another mail set-up) may take its commands or send its outbox.
_PRIVATE = {}


@pytest.fixture(scope="module", autouse=True)
def private_prefix(session):
    prefix = f"it{session.tag}mo."
    r = session.run([bin_path("omnify"), "topics", "apply"], timeout=120,
                    OMNIFY_TOPIC_PREFIX=prefix)
    assert r.returncode == 0, r.stderr
    _PRIVATE.update(OMNIFY_TOPIC_PREFIX=prefix,
                    OMNIFY_MONGO_DB_PREFIX=f"it{session.tag}mo_")
    yield
    session.run([bin_path("omnify"), "topics", "delete", prefix], timeout=60,
                OMNIFY_TOPIC_PREFIX=prefix)


def start_monolith(procs, mail_url, key=MAIL_KEY, name="monolith"):
    p = procs.start_monolith(name=name, OMNIFY_MAIL_BASE_URL=mail_url,
                             OMNIFY_MAIL_API_KEY=key, OMNIFY_PUBLIC_URL=PUBLIC_URL,
                             **LOW_ARGON2, **_PRIVATE)
    wait_status(p.url, "auth")
    return p


def timed_signup(base):
    email = unique_email("outage")
    t0 = time.monotonic()
    _, r = signup(base, email=email, password=PASSWORD)
    assert r.status == 201, r
    assert time.monotonic() - t0 < 5, f"signup took {time.monotonic() - t0:.1f}s"
    return email


def test_signup_works_while_the_mail_api_is_down_and_mail_goes_out_after(procs):
    mail = MailServer()  # not started: connections are refused
    mono = start_monolith(procs, mail.url)
    try:
        refused = timed_signup(mono.url)
        time.sleep(1.5)
        # Now it listens but answers 503.
        mail.set_mode("down")
        mail.start()
        unavailable = timed_signup(mono.url)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (mail.attempts_to(unavailable) < 2 or
                                                mail.attempts_to(refused) < 1):
            time.sleep(0.2)
        assert mail.attempts_to(unavailable) >= 2, "no retry after a 503"
        assert mail.attempts_to(refused) >= 1, "no retry after a refused connection"
        assert not mail.mails

        # Back: both mails arrive, each once, with their links.
        mail.set_mode("ok")
        for email in (refused, unavailable):
            [m] = mail.wait_mail(email, timeout=30)
            assert link_token(m, "/verify-email")
        time.sleep(1.5)
        assert len(mail.mails_to(refused)) == 1 and len(mail.mails_to(unavailable)) == 1
        assert mail.rejected == []

        log = mono.log_text()
        assert re.search(r"mail [0-9a-f-]{36}\.[a-z]+ not sent \(HTTP 503\)", log), log[-3000:]
        assert re.search(r"mail [0-9a-f-]{36}\.[a-z]+ not sent \([^)]*onnect", log), log[-3000:]
        assert MAIL_KEY not in log
        for m in mail.mails:
            assert link_token(m, "/verify-email") not in log
    finally:
        mail.stop()


def test_without_a_key_mails_wait_in_the_outbox_until_a_sender_has_one(procs):
    mail = MailServer().start()
    try:
        quiet = start_monolith(procs, mail.url, key="", name="no-key")
        email = timed_signup(quiet.url)
        time.sleep(2.0)
        assert mail.attempts_to(email) == 0
        t0 = time.monotonic()
        assert stop_all([quiet])["no-key"] == 0
        assert time.monotonic() - t0 < 15
        log = quiet.log_text()
        # Said once by each group with a mail outbox (auth; onboarding's
        # reminders).
        assert log.count("mail is disabled") == 2, log[-3000:]
        assert log.count("auth's mails stay queued") == 1, log[-3000:]

        # The queued mail survives the restart and goes out from the next
        # process that has a key.
        start_monolith(procs, mail.url, name="with-key")
        [m] = mail.wait_mail(email, timeout=30)
        assert link_token(m, "/verify-email")
    finally:
        mail.stop()


def test_stopping_interrupts_a_send_in_flight(procs):
    """A mail API that holds the request: SIGTERM still ends the process at
    once (the sender's transfer is interrupted, not waited out for curl's
    10 s), and the mail is sent later by the next process."""
    mail = MailServer().start()
    mail.set_mode("hang")
    try:
        mono = start_monolith(procs, mail.url, name="hung")
        email = timed_signup(mono.url)
        deadline = time.monotonic() + 15
        while mail.attempts_to(email) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mail.attempts_to(email) == 1
        t0 = time.monotonic()
        assert stop_all([mono])["hung"] == 0
        took = time.monotonic() - t0
        assert took < 8, f"shutdown took {took:.1f}s with a send in flight"
        assert "mail is disabled" not in mono.log_text()
    finally:
        mail.set_mode("ok")
        mail.stop()
