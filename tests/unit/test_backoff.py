import random

from broadcaster.dispatch.sending import retry_delay


def test_backoff_grows_with_full_jitter_and_a_ceiling() -> None:
    rng = random.Random(1)
    for attempts, ceiling in ((1, 5), (2, 10), (3, 20), (10, 900), (60, 900)):
        delays = [retry_delay(attempts, None, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range: full jitter


def test_never_sooner_than_the_provider_asked() -> None:
    rng = random.Random(2)
    assert all(retry_delay(1, 30.0, rng) >= 30.0 for _ in range(100))
    assert retry_delay(3, None, rng, base=0.5, most=4) <= 4
