"""Where Numba keeps the compiled kernels (`cache=True`), chosen before Numba is imported.

Numba looks for a cache folder next to the package's sources (`__pycache__`), then under the
user's home (`~/.cache/numba`), and raises "cannot cache function ...: no locator available"
when neither is writable: a package installed read-only (a shared conda environment, a
container image) run by a user without a writable home. This module picks, in order:

1. NUMBA_CACHE_DIR, when it is set (Numba's own setting; nothing is changed);
2. the package's `__pycache__`, when the user may write there (an install of one's own);
3. `$XDG_CACHE_HOME/metta-numba`, else `~/.cache/metta-numba`;
4. `<temp dir>/metta-numba-<uid>`, created private (0700); one that exists and is not the
   user's own private folder is not used, since Numba's cache files are pickles and loading
   another user's would run their code;
5. no cache at all: kernels compile in every process (tens of seconds), with one warning.

Inside that folder the kernels go to `kernels-<digest>`, keyed by the sources of every kernel
module (`use_source_keyed_folder`): Numba checks only the time stamp of the file that defines a
cached kernel, not of the files whose kernels it calls and has compiled into it, so after an
edit or an update of one module its callers elsewhere would load stale machine code.
`metta-numba warmup` removes the folders of older sources (`prune_older_folders`).

Numba keys cache files by the CPU they were compiled for. Kernels are compiled for the generic
CPU of the architecture unless the user chose otherwise (`choose_cpu`): measured, they run as
fast as code for the host's CPU (within 5%), and a cache filled on one machine then serves any
other of the same architecture, Python and Numba: a cluster's nodes, and the kernels bundled
with a built package (metta_numba.kernel_bundle). For the same reason the cache's subfolders
are named after the package's modules, not after the absolute path of the sources
(`install_package_locator`): a cache folder can be moved.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
import warnings
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_keyed_folder: Path | None = None


class KernelCacheWarning(UserWarning):
    """Compiled kernels cannot be cached: every process compiles them again."""


def _usable(folder: Path) -> bool:
    """Create `folder` if needed; True when this user may write files in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _private_temp_folder(base: Path) -> Path | None:
    """`base/metta-numba-<uid>`, created 0700, or None when it is not safely ours."""
    uid = os.getuid()
    folder = base / f"metta-numba-{uid}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return folder if os.access(folder, os.W_OK | os.X_OK) else None


def user_cache_folder(environ: dict | None = None) -> Path | None:
    """The per-user cache folder (step 3), or None when there is no usable one."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_CACHE_HOME")
    candidates = [Path(xdg) / "metta-numba"] if xdg and os.path.isabs(xdg) else []
    home = environ.get("HOME") or os.path.expanduser("~")
    if home and home != "~":
        candidates.append(Path(home) / ".cache" / "metta-numba")
    for folder in candidates:
        if _usable(folder):
            return folder
    return None


def private_folder(name: str) -> Path | None:
    """`name` inside the per-user cache folder, else inside the private temp folder (never a
    folder another user could have planted: files there may be code this process runs), or
    None when neither is usable."""
    folder = user_cache_folder()
    if folder is None:
        import tempfile

        folder = _private_temp_folder(Path(tempfile.gettempdir()))
    if folder is None or not _usable(folder / name):
        return None
    return folder / name


def choose_cache_folder(environ: dict | None = None) -> tuple[str, Path | None]:
    """(how, folder): how is "numba" (Numba's setting or the package's __pycache__ serve),
    "user", "temp", or "none" (no writable place: do not cache)."""
    environ = os.environ if environ is None else environ
    if environ.get("NUMBA_CACHE_DIR"):
        return "numba", Path(environ["NUMBA_CACHE_DIR"])
    in_tree = PACKAGE_DIR / "__pycache__"
    if (in_tree.is_dir() and os.access(in_tree, os.W_OK | os.X_OK)) or (
        not in_tree.exists() and os.access(PACKAGE_DIR, os.W_OK | os.X_OK)
    ):
        return "numba", in_tree
    folder = user_cache_folder(environ)
    if folder is not None:
        return "user", folder
    import tempfile  # only here: it costs some milliseconds to import

    folder = _private_temp_folder(Path(tempfile.gettempdir()))
    if folder is not None:
        return "temp", folder
    return "none", None


def _disable_caching() -> None:
    """Make `cache=True` a no-op: Numba has no setting for it, so its dispatcher's hook that
    attaches a cache is replaced (kernels then compile in memory, as without cache=True)."""
    from numba.core import dispatcher

    dispatcher.Dispatcher.enable_caching = lambda self: None


CPU_SETTING = "METTA_NUMBA_CPU"
"""`host` compiles the kernels for this machine's CPU instead of the generic one."""


def choose_cpu(environ: dict | None = None) -> str:
    """Which CPU the kernels are compiled for: "generic" (the default; sets NUMBA_CPU_NAME in
    `environ`, so that background warmups and workers agree), "host" (METTA_NUMBA_CPU=host) or
    "user" (NUMBA_CPU_NAME or NUMBA_CPU_FEATURES set: Numba's own settings are left alone).
    Must run before Numba reads its configuration; once Numba is imported, nothing changes
    (its code generator may already be made for the host) and the answer is "host"."""
    environ = os.environ if environ is None else environ
    if environ.get("NUMBA_CPU_NAME") or environ.get("NUMBA_CPU_FEATURES") is not None:
        return "user"
    if environ.get(CPU_SETTING, "generic").lower() == "host" or "numba" in sys.modules:
        return "host"
    environ["NUMBA_CPU_NAME"] = "generic"
    return "generic"


def compiled_cpu() -> str:
    """What Numba compiles this process's kernels for, from its configuration: "generic",
    "host" (Numba's default), or "user" (another CPU name or features the user set)."""
    from numba.core import config

    if str(config.CPU_NAME).lower() == "generic" and not config.CPU_FEATURES:
        return "generic"
    if config.CPU_NAME is None and config.CPU_FEATURES is None:
        return "host"
    return "user"


def configure() -> str:
    """Apply the choices (before any kernel module is imported); returns how the cache folder
    was chosen."""
    choose_cpu()
    how, folder = choose_cache_folder()
    if how in ("user", "temp"):
        os.environ["NUMBA_CACHE_DIR"] = str(folder)
        if "numba" in sys.modules:  # imported before us: its configuration is already read
            from numba.core import config

            config.CACHE_DIR = str(folder)
    elif how == "none":
        _disable_caching()
        # warn_explicit with a file name that is no source file: the warning is one line.
        warnings.warn_explicit(
            "no writable folder for compiled kernels (the install, $XDG_CACHE_HOME, ~/.cache and the "
            "temp folder are not writable); every run compiles them again. Set NUMBA_CACHE_DIR to a "
            "writable folder.",
            KernelCacheWarning,
            "metta-numba",
            0,
        )
    return how


class DeferredCache:
    """Stands for a kernel's Numba cache until something uses it: then it makes the real one
    (`Dispatcher.enable_caching`), puts it in the dispatcher's place, runs `on_attach` on the
    dispatcher and answers for it.

    Numba makes a kernel's cache when the kernel is defined: it locates the cache folder, checks
    that the folder exists and is writable (a temporary file is created and removed there) and
    inspects the source file. For the 100-odd kernels our modules define, that is some tens of
    milliseconds of every start-up, while a command calls about ten of them; the rest never
    need a cache."""

    def __init__(self, dispatcher, on_attach) -> None:
        self._dispatcher = dispatcher
        self._on_attach = on_attach

    def attach(self):
        dispatcher = self._dispatcher
        if dispatcher._cache is self:
            dispatcher.enable_caching()
            if dispatcher._cache is self:  # caching is off (configure found no folder)
                from numba.core.caching import NullCache

                dispatcher._cache = NullCache()
            else:
                self._on_attach(dispatcher)
        return dispatcher._cache

    def __getattr__(self, name: str):
        return getattr(self.attach(), name)


def defer_cache(dispatcher, on_attach) -> None:
    """Give `dispatcher` (made without a cache) a DeferredCache."""
    dispatcher._cache = DeferredCache(dispatcher, on_attach)


def attached_cache(dispatcher):
    """The dispatcher's Numba cache, made now if it was deferred."""
    cache = dispatcher._cache
    return cache.attach() if isinstance(cache, DeferredCache) else cache


def _package_sources(root: Path) -> list[tuple[str, str, os.stat_result]]:
    """(path relative to `root`, full path, stat) of every .py file under `root`, sorted;
    `__pycache__` folders (where the kernel cache itself may live) are not walked."""
    found = []
    folders = [(str(root), "")]
    while folders:
        folder, prefix = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        folders.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.name.endswith(".py"):
                    found.append((prefix + entry.name, entry.path, entry.stat()))
    found.sort()
    return found


def kernel_source_digest(memo_folder: Path | None = None) -> str:
    """A digest of the package's kernel modules (the sources that mention njit), paths included.

    Reading and hashing every source costs several milliseconds of each start-up. With
    `memo_folder`, the digest is kept in a file there next to a stamp of the sources' names,
    sizes and modification times, and read back while the stamp is unchanged: the test Python
    itself uses to trust a module's cached bytecode."""
    import xxhash  # the store's hash: already a dependency, and cheaper to import than hashlib

    sources = _package_sources(PACKAGE_DIR)
    stamp = xxhash.xxh64()
    for relative, _, info in sources:
        stamp.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    memo = memo_folder / "kernel-source-digest" if memo_folder is not None else None
    if memo is not None:
        try:
            known_stamp, known_digest = memo.read_text().split()
            if known_stamp == stamp.hexdigest():
                return known_digest
        except (OSError, ValueError):
            pass
    digest = xxhash.xxh64()
    for relative, path, _ in sources:
        with open(path, "rb") as f:
            data = f.read()
        if b"njit" in data:
            digest.update(relative.encode() + b"\0")
            digest.update(data)
    if memo is not None:
        partial = memo.with_name(f"{memo.name}.{os.getpid()}")
        try:
            partial.write_text(f"{stamp.hexdigest()} {digest.hexdigest()}\n")
            os.replace(partial, memo)
        except OSError:
            pass  # only a memo: the next process computes the digest again
    return digest.hexdigest()


def use_source_keyed_folder() -> Path | None:
    """Point Numba's cache at `kernels-<digest>` inside the chosen folder (see the module's
    doc); called once numba is imported, before any kernel is made. Returns that folder, or None
    when kernels are not cached or it cannot be created (Numba's setting is then left as is)."""
    global _keyed_folder
    if _keyed_folder is not None:
        return _keyed_folder
    how, folder = choose_cache_folder()
    if how == "none" or folder is None:
        return None
    keyed = folder / f"kernels-{kernel_source_digest(folder)}"
    if not _usable(keyed):
        return None
    from numba.core import config

    from metta_numba import kernel_bundle

    install_package_locator()
    config.CACHE_DIR = str(keyed)
    _keyed_folder = keyed
    kernel_bundle.seed_from_bundle(keyed)
    return keyed


_locator_installed = False


@functools.cache
def package_subfolder(py_file: str) -> str | None:
    """The cache subfolder of a kernel defined in `py_file`: the dotted name of its package
    (`metta_numba.trie`), or None for a file outside this package."""
    try:
        relative = Path(py_file).resolve().parent.relative_to(PACKAGE_DIR)
    except ValueError:
        return None
    return ".".join((PACKAGE_DIR.name, *relative.parts))


def install_package_locator() -> None:
    """Put a locator for this package's kernels first in Numba's list of cache locators.

    Numba's locator for NUMBA_CACHE_DIR names a kernel's subfolder after a hash of the absolute
    path of its source folder, so the same sources installed elsewhere (a built package, a
    copied cache) never find each other's code; ours names it after the package. Numba's
    checks stay as they are: a cached kernel is used only for the same source text (a content
    hash), Numba version, Python version and CPU. Other code's kernels keep Numba's locators."""
    global _locator_installed
    if _locator_installed:
        return
    from numba.core import caching

    base = getattr(caching, "UserProvidedCacheLocator", None) or caching._UserProvidedCacheLocator
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl

    class PackageCacheLocator(base):
        @classmethod
        def get_suitable_cache_subpath(cls, py_file):
            return package_subfolder(py_file) or super().get_suitable_cache_subpath(py_file)

        @classmethod
        def from_function(cls, py_func, py_file):
            if package_subfolder(py_file) is None:
                return None
            return super().from_function(py_func, py_file)

    impl._locator_classes.insert(0, PackageCacheLocator)
    _locator_installed = True


def _is_kernel_folder(path: Path) -> bool:
    name = path.name
    digest = name[len("kernels-") :]
    return (
        name.startswith("kernels-")
        and len(digest) == 16
        and all(c in "0123456789abcdef" for c in digest)
        and path.is_dir()
        and not path.is_symlink()
    )


def prune_older_folders(current: Path) -> list[Path]:
    """Remove the `kernels-<digest>` folders beside `current` (the folder of these sources)
    that were last written before it: each edit or update of a kernel module leaves one behind,
    and nothing else ever reads it again. A folder written after `current` is kept: another
    install of other sources may share the cache folder and still use it. Folders that are not
    named as ours are never touched. Returns the folders removed."""
    import shutil

    try:
        current_time = current.stat().st_mtime
        siblings = list(current.parent.iterdir())
    except OSError:
        return []
    removed = []
    for folder in siblings:
        if folder == current or not _is_kernel_folder(folder):
            continue
        try:
            if folder.stat().st_mtime >= current_time:
                continue
            shutil.rmtree(folder)
        except OSError:
            continue  # another process removed it first, or it is not ours to remove
        removed.append(folder)
    return removed
