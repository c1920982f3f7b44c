/* SPDX-License-Identifier: BSD-3-Clause */
/* lock-holder PIDFILE FILE BYTE...: hold OFD read locks on the given
 * bytes of FILE, as a qemu process holding those permission bytes
 * would, in the background.  Returns once the locks are held; the
 * holder's pid is in PIDFILE (kill it to release them).  For
 * test-locking.sh: some of qemu's lock bytes are not taken by any
 * qemu-utils command (for example "consistent read" unshared).
 */
#include <config.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int
main (int argc, char *argv[])
{
  FILE *pidfile;
  pid_t pid;
  int fd, i;

  if (argc < 4) {
    fprintf (stderr, "usage: lock-holder PIDFILE FILE BYTE...\n");
    return 2;
  }
  fd = open (argv[2], O_RDONLY);
  if (fd == -1) {
    perror (argv[2]);
    return 1;
  }
  for (i = 3; i < argc; i++) {
    struct flock fl = {
      .l_type = F_RDLCK, .l_whence = SEEK_SET,
      .l_start = atoi (argv[i]), .l_len = 1,
    };
    if (fcntl (fd, F_OFD_SETLK, &fl) == -1) {
      perror ("fcntl F_OFD_SETLK");
      return 1;
    }
  }
  pid = fork ();
  if (pid == -1) {
    perror ("fork");
    return 1;
  }
  if (pid == 0) {               /* the locks belong to the shared fd */
    int null = open ("/dev/null", O_RDWR);
    /* Let a caller that reads our output see its end. */
    if (null >= 0) {
      dup2 (null, 0);
      dup2 (null, 1);
      dup2 (null, 2);
    }
    for (;;)
      pause ();
  }
  pidfile = fopen (argv[1], "w");
  if (pidfile == NULL || fprintf (pidfile, "%d\n", (int) pid) < 0 ||
      fclose (pidfile) != 0) {
    perror (argv[1]);
    return 1;
  }
  return 0;
}
