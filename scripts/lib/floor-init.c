/* The boot-time floor: a trivial /init that reports the kernel's uptime
 * when it gets control and powers the machine off at once. scripts/lib/
 * timing.sh boots it with the same kernel and QEMU machine as a MaticOS node,
 * so the node's figures can be read against what the kernel alone costs.
 * Built with gcc -static by timing.sh; never part of a MaticOS image. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
  char up[64] = "?", msg[128];
  mkdir("/proc", 0555);
  if (mount("proc", "/proc", "proc", 0, NULL) == 0) {
    int fd = open("/proc/uptime", O_RDONLY);
    if (fd >= 0) { ssize_t n = read(fd, up, sizeof up - 1); if (n > 0) { up[n] = 0; *strchr(up, ' ') = 0; } close(fd); }
  }
  int c = open("/dev/console", O_WRONLY);
  int n = snprintf(msg, sizeof msg, "matic-floor: /init running at uptime %s s\n", up);
  if (c >= 0) write(c, msg, n);
  reboot(RB_POWER_OFF);
  return 1;
}
