import pytest

from connections.journal_writer import JournalWriter


@pytest.fixture
def journal_writer(settings, tmp_path):
    """Makes JournalWriters (a runner child's journal thread) spooling into this test's own directory; each is
    stopped at the end of the test."""
    settings.EVENT_SPOOL_DIR = str(tmp_path)
    made = []

    def make(**kwargs) -> JournalWriter:
        made.append(JournalWriter(**kwargs))
        return made[-1]

    yield make
    for writer in made:
        writer.stop()
