#!/bin/sh
# PID 1 of the systemd test container: replace Docker's cgroup-v1 view with a private cgroup2
# mount (needs --cgroupns=private and CAP_SYS_ADMIN; the host's /sys/fs/cgroup is never
# mounted), then become systemd.
umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup
mount -t cgroup2 -o rw,nosuid,nodev,noexec,relatime cgroup2 /sys/fs/cgroup
exec /sbin/init "$@"
