/* The payload's guest-owning commands (payload-guest.c); each returns the
 * exit status. */
#pragma once

int cmd_own_guest(void);

int cmd_hold_images(int argc, char **argv);
