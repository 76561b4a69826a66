/* The payload's network commands (payload-net.c); each takes
 * main's argc and argv ("payload NAME ARGS...": argv[2] is the first ARG)
 * and returns the exit status. */
#pragma once

int cmd_tcp(int argc, char **argv);

int cmd_echo_server(int argc, char **argv);

int cmd_sink(int argc, char **argv);

int cmd_tcp_connect(int argc, char **argv);

int cmd_tcp_client(int argc, char **argv);
