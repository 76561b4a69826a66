/* The payload's guest-owning commands (payload-guest.c); each returns the
 * exit status. */
#pragma once

int cmd_own_guest(int argc, char **argv);

int cmd_hold_images(int argc, char **argv);

int cmd_fill_xattrs(int argc, char **argv);
int cmd_fill_unlinked(int argc, char **argv);
