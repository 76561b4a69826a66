/* Feeds a live agent malformed input and checks that it answers with errors
 * and stays up. Runs against a real VM (default) or, with --fake AGENT, the
 * agent as a plain process. Prints TAP; exit status 0 only if all passed.
 *
 *   agent-frames [--fake AGENT] [--config FILE] STATE_DIR
 */
#include "agent-client.h"
#include "cleanup.h"
#include "config.h"
#include "fake-vm.h"
#include "paths.h"
#include "sandbox.h"

#include <getopt.h>
#include <string.h>

static int n_test, n_failed;

static void tap(bool ok, const char *what, const char *detail)
{
	n_test++;
	if (!ok)
		n_failed++;
	printf("%s %d - %s%s%s\n", ok ? "ok" : "not ok", n_test, what, detail ? ": " : "",
	       detail ? detail : "");
	fflush(stdout);
}

/* Sends raw bytes, then expects an error reply with id 0. */
static void expect_error_reply(struct agent_client *c, const void *buf, size_t len,
			       const char *what, const char *needle)
{
	Cocoon__Response *resp = NULL;
	_cleanup_error_ struct error *err = NULL;

	if (agent_send_raw(c, buf, len, &err) < 0 ||
	    agent_read_response(c, &resp, 20000, &err) < 0) {
		tap(false, what, err->msg);
		return;
	}
	bool ok = resp->error != 0 && resp->message && strstr(resp->message, needle);
	tap(ok, what, resp->message);
	cocoon__response__free_unpacked(resp, NULL);
}

static void expect_ping(struct agent_client *c, const char *what)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__Ping ping = COCOON__PING__INIT;
	Cocoon__Response *resp = NULL;
	_cleanup_error_ struct error *err = NULL;

	ping.nonce = 4242;
	req.body_case = COCOON__REQUEST__BODY_PING;
	req.ping = &ping;
	int r = agent_call(c, &req, &resp, 20000, &err);
	tap(r == 0 && resp->pong->nonce == 4242, what, err ? err->msg : NULL);
	if (r == 0)
		cocoon__response__free_unpacked(resp, NULL);
}

/* A well-formed request the agent must refuse, answered with an error
 * naming needle. */
static void expect_refused(struct agent_client *c, Cocoon__Request *req, const char *what,
			   const char *needle)
{
	Cocoon__Response *resp = NULL;
	_cleanup_error_ struct error *err = NULL;

	int r = agent_call(c, req, &resp, 20000, &err);
	bool ok = r < 0 && err && strstr(err->msg, needle);
	tap(ok, what, err ? err->msg : "accepted");
	if (r == 0)
		cocoon__response__free_unpacked(resp, NULL);
}

/* IDs go by the one rule of contract.h on the guest side too: an ID the
 * host would refuse is refused by the agent before it becomes a path. */
static void restore_cases(struct agent_client *c)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__RestoreRequest rr = COCOON__RESTORE_REQUEST__INIT;
	Cocoon__ContainerSpec spec = COCOON__CONTAINER_SPEC__INIT;
	Cocoon__ImageShare share = COCOON__IMAGE_SHARE__INIT, *shares[COCOON_MAX_CHAIN + 1];

	req.body_case = COCOON__REQUEST__BODY_RESTORE;
	req.restore = &rr;
	rr.spec = &spec;
	rr.shared_path = (char *)"checkpoints/x";
	spec.id = (char *)"-rf x";
	expect_refused(c, &req, "restore of an ID outside the contract's rule is refused",
		       "invalid request");

	share.tag = (char *)COCOON_TAG_IMAGES "0";
	share.name = (char *)"x";
	for (size_t i = 0; i < ARRAY_SIZE(shares); i++)
		shares[i] = &share;
	spec.id = (char *)"c1";
	rr.images = shares;
	rr.n_images = ARRAY_SIZE(shares);
	expect_refused(c, &req, "restore of a longer chain than the contract's is refused",
		       "invalid request");
	expect_ping(c, "agent answers after refused restores");
}

static void run_cases(struct agent_client *c)
{
	uint8_t junk[3000];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 7 + 13);
	expect_error_reply(c, junk, sizeof(junk), "garbage bytes get an error reply", "bad frame");
	expect_ping(c, "agent answers after garbage");

	uint8_t hdr[FRAME_HEADER_SIZE];
	frame_header_encode(hdr, FRAME_MAX_PAYLOAD + 1);
	expect_error_reply(c, hdr, sizeof(hdr), "oversized frame is refused", "exceeds");
	expect_ping(c, "agent answers after an oversized frame");

	uint8_t bad[FRAME_HEADER_SIZE + 16];
	frame_header_encode(bad, 16);
	memset(bad + FRAME_HEADER_SIZE, 0xff, 16);
	expect_error_reply(c, bad, sizeof(bad), "undecodable payload is refused", "undecodable");
	expect_ping(c, "agent answers after an undecodable payload");

	/* Right framing and encoding, wrong protocol version. */
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__Ping ping = COCOON__PING__INIT;
	req.protocol = PROTOCOL_VERSION + 100;
	req.id = 777;
	req.body_case = COCOON__REQUEST__BODY_PING;
	req.ping = &ping;
	_cleanup_free_ uint8_t *frame = NULL;
	size_t len = 0;
	proto_frame_request(&req, &frame, &len, NULL);
	expect_error_reply(c, frame, len, "foreign protocol version is refused",
			   "protocol version");

	/* An empty request (no body) is not a crash either. */
	Cocoon__Request empty = COCOON__REQUEST__INIT;
	empty.protocol = PROTOCOL_VERSION;
	_cleanup_free_ uint8_t *f2 = NULL;
	proto_frame_request(&empty, &f2, &len, NULL);
	expect_error_reply(c, f2, len, "request without a body is refused", "not supported");
	restore_cases(c);
	expect_ping(c, "agent is still up at the end");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"fake", required_argument, NULL, 'f'},
					     {"config", required_argument, NULL, 'c'},
					     {}};
	struct cocoon_config cfg;
	struct sandbox_options sopts = {0};
	_cleanup_error_ struct error *err = NULL;
	const char *config = NULL;
	struct sandbox sb;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'f') {
			fake_vm_agent_path = optarg;
			sopts.backend = &vm_backend_fake;
			sopts.accel = "tcg";
		} else if (c == 'c') {
			config = optarg;
		} else {
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: agent-frames [--fake AGENT] [--config FILE] STATE_DIR\n");
		return 2;
	}
	if (config_load(&cfg, config, &err) < 0) {
		fprintf(stderr, "%s\n", err->msg);
		return 2;
	}
	printf("1..12\n");
	if (sandbox_boot(&sb, &cfg, argv[optind], &sopts, &err) < 0) {
		printf("Bail out! boot: %s\n", err->msg);
		return 1;
	}
	run_cases(&sb.agent);
	sandbox_shutdown(&sb);
	sandbox_destroy(&sb, true);
	config_free(&cfg);
	return n_failed ? 1 : 0;
}
