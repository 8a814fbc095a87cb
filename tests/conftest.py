"""Collection order: the longest files first, so that with one worker per core (pytest-xdist,
a file per worker) none of them starts last and runs alone at the end."""
SLOW_FILES = ("test_tour.py", "test_readme.py", "test_sweep.py", "test_nn.py", "test_kernels.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)
    items.sort(key=rank)                 # stable: the order within and among the other files is kept
