"""The container's filesystem view, built inside its new mount namespace.

Order follows runc: root propagation, rootfs bind, the config's mounts, /dev, then (after
the createRuntime hooks) pivot_root, and at the end read-only and masked paths.
"""

import errno
import os
import stat

from . import linux as s
from .cgroups import is_unified
from .config import Device, Mount, Spec
from .errors import RuntimeFailure
from .mount_options import parse_mount_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .syscalls import Syscall

_DEFAULT_DEVICES = (
    # path, major, minor
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)
_DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)
# statvfs f_flag bits that a remount inside a user namespace must keep (they are locked).
_LOCKED_STATVFS_FLAGS = ((1, s.MS_RDONLY), (2, s.MS_NOSUID), (4, s.MS_NODEV), (8, s.MS_NOEXEC),
                         (1024, s.MS_NOATIME), (2048, s.MS_NODIRATIME),
                         (4096, s.MS_RELATIME))
_MAX_SYMLINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """root + unsafe, resolving symlinks as if root were '/', so nothing escapes root."""
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise RuntimeFailure(f"too many symlinks resolving {unsafe}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def prepare_rootfs(spec: Spec, bundle: str, sys: "Syscall", in_userns: bool,
                   cgroup_paths: dict[str, str]) -> None:
    """Everything before pivot_root: propagation, rootfs bind, mounts, /dev."""
    rootfs = spec.root_path
    propagation = spec.linux.rootfs_propagation
    root_flags = parse_mount_options([propagation]).propagation if propagation else []
    sys.mount(None, "/", None, root_flags[0] if root_flags else s.MS_SLAVE | s.MS_REC)
    _make_parent_mount_private(rootfs, sys)
    sys.mount(rootfs, rootfs, "bind", s.MS_BIND | s.MS_REC)
    has_dev = False
    for index, mount in enumerate(spec.mounts):
        try:
            _mount_one(mount, rootfs, bundle, spec, sys, cgroup_paths)
        except (OSError, ValueError) as e:
            raise RuntimeFailure(
                f"mounts[{index}]: error mounting {mount.source or mount.type!r} to rootfs at "
                f"{mount.destination!r}: {_reason(e)}") from None
        if os.path.normpath(mount.destination) == "/dev":
            has_dev = True
    if has_dev:
        _create_default_devices(rootfs, sys, in_userns)
        _create_dev_symlinks(rootfs)
    if spec.process is not None:
        # Before the root can become read-only, as runc does.
        os.makedirs(secure_join(rootfs, spec.process.cwd), mode=0o755, exist_ok=True)
    for index, device in enumerate(spec.linux.devices):
        try:
            _create_device(rootfs, device, sys, in_userns)
        except OSError as e:
            raise RuntimeFailure(f"linux.devices[{index}]: creating {device.path}: "
                                 f"{_reason(e)}") from None


def pivot(rootfs: str, sys: "Syscall", no_pivot: bool) -> None:
    if no_pivot:
        os.chdir(rootfs)
        sys.mount(rootfs, "/", None, s.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        return
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.fchdir(new_root)
        # pivot_root(".", ".") stacks the old root on top of the new one; no put_old dir.
        sys.pivot_root(".", ".")
        os.fchdir(old_root)
        # rslave first so that detaching the old root does not propagate to the host.
        sys.mount(None, ".", None, s.MS_SLAVE | s.MS_REC)
        sys.umount2(".", s.MNT_DETACH)
    finally:
        os.close(old_root)
        os.close(new_root)
    os.chdir("/")


def finish_rootfs(spec: Spec, sys: "Syscall") -> None:
    """After pivot_root: propagation of '/', read-only and masked paths, read-only root."""
    if spec.linux.rootfs_propagation:
        for flag in parse_mount_options([spec.linux.rootfs_propagation]).propagation:
            sys.mount(None, "/", None, flag)
    for path in spec.linux.readonly_paths:
        if not os.path.lexists(path):
            continue
        sys.mount(path, path, None, s.MS_BIND | s.MS_REC)
        _remount(sys, path, s.MS_BIND | s.MS_REMOUNT | s.MS_RDONLY | s.MS_REC)
    for path in spec.linux.masked_paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            sys.mount("tmpfs", path, "tmpfs", s.MS_RDONLY)
        else:
            sys.mount("/dev/null", path, None, s.MS_BIND)
    if spec.root_readonly:
        _remount(sys, "/", s.MS_BIND | s.MS_REMOUNT | s.MS_RDONLY)


def _mount_one(mount: Mount, rootfs: str, bundle: str, spec: Spec, sys: "Syscall",
               cgroup_paths: dict[str, str]) -> None:
    options = parse_mount_options(mount.options)
    kind = mount.type
    if kind == "bind":
        options.flags |= s.MS_BIND
    dest = secure_join(rootfs, mount.destination)
    if options.is_bind:
        source = mount.source if os.path.isabs(mount.source) else os.path.join(bundle,
                                                                                mount.source)
        if not os.path.exists(source):
            raise FileNotFoundError(errno.ENOENT, f"bind source {source} does not exist")
        _create_mountpoint(dest, directory=os.path.isdir(source))
        sys.mount(source, dest, "bind", options.flags & (s.MS_BIND | s.MS_REC))
        extra = options.flags & ~(s.MS_BIND | s.MS_REC | s.MS_REMOUNT)
        if extra:
            _remount(sys, dest, extra | s.MS_BIND | s.MS_REMOUNT)
    elif kind in ("cgroup", "cgroup2"):
        _create_mountpoint(dest, directory=True)
        _mount_cgroup(dest, options.flags, spec, sys, cgroup_paths)
    else:
        _create_mountpoint(dest, directory=True)
        if kind == "tmpfs" and "tmpcopyup" in options.runtime:
            _mount_tmpfs_copyup(mount, dest, options.flags, options.data_string, sys)
        else:
            sys.mount(mount.source or kind, dest, kind or None, options.flags,
                      options.data_string)
    for flag in options.propagation:
        sys.mount(None, dest, None, flag)


def _mount_tmpfs_copyup(mount: Mount, dest: str, flags: int, data: str | None,
                        sys: "Syscall") -> None:
    import shutil
    import tempfile

    staging = tempfile.mkdtemp(prefix="dockyard-copyup-")
    try:
        sys.mount(mount.source or "tmpfs", staging, "tmpfs", flags & ~s.MS_RDONLY, data)
        shutil.copytree(dest, staging, symlinks=True, dirs_exist_ok=True)
        shutil.copystat(dest, staging)
        sys.mount(staging, dest, None, s.MS_MOVE)
        if flags & s.MS_RDONLY:
            sys.mount(None, dest, None, flags | s.MS_REMOUNT)
    finally:
        os.rmdir(staging)


def _mount_cgroup(dest: str, flags: int, spec: Spec, sys: "Syscall",
                  cgroup_paths: dict[str, str]) -> None:
    """On v2, cgroup2 itself inside a cgroup namespace, else the container's directory;
    on v1, the container's directory of each hierarchy bound under a tmpfs, as runc does."""
    if is_unified(cgroup_paths):
        ns = spec.linux.namespace("cgroup")
        if ns is not None and not ns.path:
            sys.mount("cgroup2", dest, "cgroup2", flags & ~s.MS_RDONLY | s.MS_NOSUID
                      | s.MS_NODEV | s.MS_NOEXEC)
        else:
            sys.mount(cgroup_paths[""], dest, None, s.MS_BIND | s.MS_REC)
        if flags & s.MS_RDONLY:
            _remount(sys, dest, s.MS_BIND | s.MS_REMOUNT | s.MS_RDONLY)
        return
    sys.mount("tmpfs", dest, "tmpfs", s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC, "mode=755")
    for name, host_dir in cgroup_paths.items():
        if not name or not os.path.isdir(host_dir):
            continue
        sub = os.path.join(dest, name.removeprefix("name="))
        os.makedirs(sub, exist_ok=True)
        sys.mount(host_dir, sub, None, s.MS_BIND | s.MS_REC)
        if flags & s.MS_RDONLY:
            _remount(sys, sub, s.MS_BIND | s.MS_REMOUNT | s.MS_RDONLY | s.MS_NOSUID
                     | s.MS_NODEV | s.MS_NOEXEC)
    if flags & s.MS_RDONLY:
        _remount(sys, dest, s.MS_REMOUNT | s.MS_RDONLY | s.MS_NOSUID | s.MS_NODEV
                 | s.MS_NOEXEC)


def _remount(sys: "Syscall", path: str, flags: int) -> None:
    try:
        sys.mount(None, path, None, flags)
    except OSError as e:
        if e.errno != errno.EPERM:
            raise
        # In a user namespace the mount's nosuid/nodev/noexec/atime flags are locked:
        # a remount must repeat them or the kernel refuses it.
        current = os.statvfs(path).f_flag
        for vfs_bit, ms_flag in _LOCKED_STATVFS_FLAGS:
            if current & vfs_bit:
                flags |= ms_flag
        sys.mount(None, path, None, flags)


def _create_mountpoint(path: str, directory: bool) -> None:
    if directory:
        os.makedirs(path, mode=0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))


def _make_parent_mount_private(rootfs: str, sys: "Syscall") -> None:
    """pivot_root refuses a new root whose parent mount is shared."""
    parent = os.path.dirname(os.path.realpath(rootfs))
    while parent != "/" and not os.path.ismount(parent):
        parent = os.path.dirname(parent)
    sys.mount(None, parent, None, s.MS_PRIVATE)


def _create_default_devices(rootfs: str, sys: "Syscall", in_userns: bool) -> None:
    old_umask = os.umask(0)
    try:
        for path, major, minor in _DEFAULT_DEVICES:
            _create_device(rootfs, Device(path, "c", major, minor, 0o666, 0, 0), sys,
                           in_userns)
    finally:
        os.umask(old_umask)


def _create_device(rootfs: str, device: Device, sys: "Syscall", in_userns: bool) -> None:
    dest = secure_join(rootfs, device.path)
    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
    if in_userns:
        # mknod is not allowed in a user namespace: bind the host's node instead.
        _create_mountpoint(dest, directory=False)
        sys.mount(device.path, dest, "bind", s.MS_BIND)
        return
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    mode = device.file_mode if device.file_mode is not None else 0o666
    if os.path.lexists(dest):
        os.unlink(dest)
    os.mknod(dest, kinds[device.type] | (mode & 0o7777),
             os.makedev(device.major, device.minor))
    os.chown(dest, device.uid or 0, device.gid or 0)
    # mknod is subject to the umask; the configured mode is what the user asked for.
    os.chmod(dest, mode & 0o7777)


def _create_dev_symlinks(rootfs: str) -> None:
    links = list(_DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    links.append(("pts/ptmx", "/dev/ptmx"))
    for target, link in links:
        path = secure_join(rootfs, link)
        if os.path.lexists(path):
            if link != "/dev/ptmx":
                continue
            os.unlink(path)
        os.symlink(target, path)


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.split(": ")[-1].lower()
    return str(error)
