#!/usr/bin/env bash
# The fresh-machine check (README, "Tests"): a brand-new minimal Debian 12 made by
# `debootstrap --variant=minbase bookworm`, a fresh clone of this repository's HEAD (committed
# work only), and inside it, as root, the README's two commands: `bash scripts/demo.sh`, then
# `bash scripts/test.sh`. Each step's wall time is printed, and the exit status is the first
# failing step's. It shows what a new machine lacks that a developer's machine hides.
#   bash scripts/fresh_machine_check.sh [ROOT] [STEP...]
#     ROOT   the chroot folder (default /var/tmp/drifa-fresh); a finished debootstrap there is
#            reused (remove ROOT for a check from nothing), the clone is always made anew
#     STEP   install | demo | test (default: demo test; demo and test install what is missing)
# Needs root, debootstrap (installed if missing) and a reachable Debian mirror (MIRROR=...).
set -euo pipefail
root=${1:-/var/tmp/drifa-fresh}
shift || true
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(demo test)
mirror=${MIRROR:-http://deb.debian.org/debian}
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "fresh_machine_check: run as root (debootstrap, chroot)"; exit 2; }
for s in "${steps[@]}"; do
  case "$s" in install|demo|test) ;; *) echo "fresh_machine_check: unknown step '$s' (install, demo, test)"; exit 2 ;; esac
done
command -v debootstrap > /dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }

stamp() { date +%s; }
if [ ! -e "$root/.debootstrap-done" ]; then
  [ ! -e "$root" ] || { echo "fresh_machine_check: $root exists but holds no finished debootstrap; remove it"; exit 2; }
  t=$(stamp)
  debootstrap --variant=minbase bookworm "$root" "$mirror" > "$root.debootstrap.log" 2>&1 ||
    { tail -20 "$root.debootstrap.log"; exit 1; }
  # The suites a Debian 12 machine has: updates and security beside the release.
  cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
  touch "$root/.debootstrap-done"
  echo "debootstrap: $(( $(stamp) - t )) s"
fi

mounted=()
cleanup() { for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2> /dev/null || true; done; }
trap cleanup EXIT
for m in proc sys dev dev/pts dev/shm; do
  mkdir -p "$root/$m"
  mount --bind "/$m" "$root/$m"
  mounted+=("$root/$m")
done
cp /etc/resolv.conf "$root/etc/resolv.conf" 2> /dev/null || true

rm -rf "$root/root/drifa"
git clone -q "$repo" "$root/root/drifa"
echo "clone: $(git -C "$root/root/drifa" log -1 --format='%h %s' | cut -c1-100)"

status=0
for s in "${steps[@]}"; do
  case "$s" in
    install) cmd="bash scripts/install-deps.sh" ;;
    demo) cmd="bash scripts/demo.sh" ;;
    test) cmd="bash scripts/test.sh" ;;
  esac
  t=$(stamp)
  # A clean environment, as a new root shell has: nothing of this machine's leaks in.
  if chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
       bash -c "cd /root/drifa && $cmd" > "$root.$s.log" 2>&1; then
    echo "$s ($cmd): passed in $(( $(stamp) - t )) s; log: $root.$s.log"
  else
    status=$?
    echo "$s ($cmd): FAILED (exit $status) after $(( $(stamp) - t )) s; the log's end ($root.$s.log):"
    tail -30 "$root.$s.log"
    break
  fi
done
exit $status
