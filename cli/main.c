/* nanoctl: the NANO admin CLI (docs/nanoctl.md). The program is ctl_run. */
#include <stdio.h>

#include "ctl.h"

int main(int argc, char **argv)
{
    ctl_io io = {stdout, stderr, stdin, NULL, NULL};
    int rc = ctl_run(argc, argv, &io);
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
        rc = CTL_EXIT_FAIL; /* e.g. a full disk or a closed pipe */
    return rc;
}
