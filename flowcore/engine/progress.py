"""A progress bar decided by the expected work: with ``enabled=None`` it appears once the
measured rate says the rest will take more than a few seconds (a 201² PF basin map shows one,
a thousand NGF starts do not). :func:`quiet` turns the automatic ones off (the tour without its
own bar, a test)."""
import contextlib
import time

SHOW_AFTER = 3.0    # seconds of projected remaining work
_AUTOMATIC = [True]


@contextlib.contextmanager
def quiet(on=True):
    """Within: bars left to decide for themselves (``enabled=None``) stay hidden."""
    before, _AUTOMATIC[0] = _AUTOMATIC[0], not on
    try:
        yield
    finally:
        _AUTOMATIC[0] = before


class Progress:
    def __init__(self, total, desc, unit, enabled=None):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.done, self.bar, self.t0 = 0, None, time.perf_counter()
        if enabled:
            self._open()

    def _open(self):
        from tqdm.auto import tqdm
        # a total in time (the central flow's GD steps) is a float: counts shown to one decimal
        fmt = None if not isinstance(self.total, float) else (
            "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} [{elapsed}<{remaining}, {rate_fmt}]")
        self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, initial=self.done, bar_format=fmt)

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled is None and _AUTOMATIC[0] and 0 < self.done < self.total:
            rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
            if (self.total - self.done) / rate > SHOW_AFTER:
                self._open()

    def close(self):
        if self.bar is not None:
            self.bar.close()
