/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz everything a varlink peer controls: the framing (fed in chunks whose size the
 * input picks, with a small limit so oversize paths are reached), call parsing, and a
 * real server connection over a socketpair on sd-event, including asynchronous
 * replies, handler errors and replies the client does not read.
 *
 * Input layout: byte 0 picks the chunk size and byte 1 the frame limit for the
 * framing pass; the whole input is then written to the server as a client would.
 * Invariants are checked with CHECK(), which aborts: a crash, a leak (under ASan),
 * a stuck server or a reply that is not varlink are all failures.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "varlink.h"

#define CHECK(x)                                                                       \
	do {                                                                           \
		if (!(x)) {                                                            \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
			abort();                                                       \
		}                                                                      \
	} while (0)

/* ------------------------------------------------------------------ framing + parsing */

static void check_call(const char *msg)
{
	VarlinkCall c = {};
	int r = varlink_call_parse(msg, &c);

	CHECK(r == 0 || r == -EBADMSG);
	if (r == 0) {
		CHECK(c.method && c.method[0] != '\0');
		CHECK(json_object_is_type(c.parameters, json_type_object));
	} else {
		CHECK(!c.method && !c.parameters);
	}
	varlink_call_done(&c);
}

static void fuzz_frame(const uint8_t *data, size_t size, size_t chunk, size_t max)
{
	size_t off = 0, nuls = 0, msgs = 0;
	VarlinkFrame f;
	bool oversize = false;

	varlink_frame_init(&f, max);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		size_t before = varlink_frame_pending(&f);
		char *m;
		int r;

		r = varlink_frame_feed(&f, data + off, n);
		if (r == -EMSGSIZE) {
			/* A refused feed takes nothing. */
			CHECK(varlink_frame_pending(&f) == before);
			oversize = true;
			break;
		}
		CHECK(r == 0);
		for (size_t i = off; i < off + n; i++)
			nuls += data[i] == 0;
		off += n;

		while ((r = varlink_frame_next(&f, &m)) > 0) {
			CHECK(strlen(m) + 1 <= max);
			check_call(m);
			free(m);
			msgs++;
		}
		CHECK(r == 0);
		/* Only an unterminated tail remains, and it can still be completed. */
		CHECK(varlink_frame_pending(&f) < max);
	}
	/* Every NUL ended exactly one message, however the bytes were split. */
	if (!oversize)
		CHECK(msgs == nuls);
	varlink_frame_done(&f);
}

/* ------------------------------------------------------------------ the server */

static sd_event *event;
static VarlinkServer *server;
static VarlinkConnection *parked[64];
static size_t n_parked;

static int method_echo(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	return varlink_reply(c, json_object_get(parameters));
}

static int method_later(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	if (n_parked >= sizeof(parked) / sizeof(parked[0]))
		return varlink_reply_error(c, "io.fuzz.Busy", NULL);
	parked[n_parked++] = c;
	return 0;
}

static int method_einval(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	return -EINVAL;
}

static int method_eio(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	return -EIO;
}

static int method_peer(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	uid_t uid;

	CHECK(varlink_connection_get_peer(c, NULL, &uid, NULL) == 0);
	CHECK(uid == getuid());
	return varlink_reply_error(c, "io.fuzz.Denied", json_object_new_object());
}

/* Streams when asked for "more"; the last continue may be dropped for an unread peer. */
static int method_stream(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	for (int i = 0; i < 3; i++) {
		int r = varlink_reply_continues(c, json_object_get(parameters));

		CHECK(r == 0 || r == -EAGAIN || r == -ENOTCONN);
	}
	return varlink_reply(c, NULL);
}

static const VarlinkMethod methods[] = {
	{ "io.fuzz.Stream", method_stream },
	{ "io.fuzz.Echo", method_echo },
	{ "io.fuzz.Later", method_later },
	{ "io.fuzz.Einval", method_einval },
	{ "io.fuzz.Eio", method_eio },
	{ "io.fuzz.Peer", method_peer },
	{}
};

static const VarlinkInterface interfaces[] = {
	{ "io.fuzz", "interface io.fuzz\nmethod Echo() -> ()\n" },
	{}
};

static void server_setup(void)
{
	static const VarlinkServerInfo info = { "fuzz", "fuzz-varlink", "0", "" };

	if (server)
		return;
	CHECK(sd_event_new(&event) >= 0);
	CHECK(varlink_server_new(event, &info, interfaces, methods, NULL, &server) == 0);
	CHECK(varlink_server_set_idle_timeout(server, 0) == 0);
}

static void run_until_idle(void)
{
	for (unsigned i = 0;; i++) {
		int r = sd_event_run(event, 0);

		CHECK(r >= 0);
		if (r == 0)
			return;
		CHECK(i < 1000000);  /* spinning */
	}
}

static void answer_parked(void)
{
	for (size_t i = 0; i < n_parked; i++) {
		int r = varlink_reply(parked[i], NULL);

		CHECK(r == 0 || r == -ENOTCONN);
	}
	n_parked = 0;
}

/* Read what the server sent; every message must be a varlink reply. */
static bool drain(int fd, VarlinkFrame *rx)
{
	char buf[65536], *m;
	bool eof = false;

	for (;;) {
		ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (k < 0) {
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNRESET);
			eof = errno == ECONNRESET;
			break;
		}
		if (k == 0) {
			eof = true;
			break;
		}
		CHECK(varlink_frame_feed(rx, buf, k) == 0);
	}
	while (varlink_frame_next(rx, &m) > 0) {
		json_object *o = json_tokener_parse(m), *p, *e;

		CHECK(o && json_object_is_type(o, json_type_object));
		CHECK(json_object_object_get_ex(o, "parameters", &p) &&
		      json_object_is_type(p, json_type_object));
		if (json_object_object_get_ex(o, "error", &e))
			CHECK(json_object_is_type(e, json_type_string));
		if (json_object_object_get_ex(o, "continues", &e))
			CHECK(json_object_is_type(e, json_type_boolean) && json_object_get_boolean(e));
		json_object_put(o);
		free(m);
	}
	return eof;
}

static void fuzz_server(const uint8_t *data, size_t size)
{
	VarlinkFrame rx;
	size_t off = 0;
	unsigned stuck = 0;
	int sv[2];

	server_setup();
	varlink_frame_init(&rx, VARLINK_MESSAGE_MAX);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	CHECK(varlink_server_add_connection(server, sv[1], NULL) == 0);

	while (off < size) {
		ssize_t k = send(sv[0], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (k > 0) {
			off += k;
			stuck = 0;
		} else {
			CHECK(k < 0);
			if (errno == EPIPE || errno == ECONNRESET)
				break;  /* the server hung up on us */
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
			CHECK(++stuck < 100000);
		}
		run_until_idle();
		answer_parked();
		run_until_idle();
		if (drain(sv[0], &rx))
			break;
	}

	/* Done sending: the server answers what was complete, then closes. */
	(void) shutdown(sv[0], SHUT_WR);
	for (stuck = 0;; stuck++) {
		run_until_idle();
		answer_parked();
		run_until_idle();
		if (drain(sv[0], &rx))
			break;
		CHECK(stuck < 100000);
	}
	CHECK(varlink_server_n_connections(server) == 0);
	close(sv[0]);
	varlink_frame_done(&rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4 * VARLINK_MESSAGE_MAX)
		return 0;

	if (size >= 2) {
		size_t chunk = (size_t) data[0] % 97 + 1;
		size_t max = ((size_t) data[1] << 4) + 2;

		fuzz_frame(data + 2, size - 2, chunk, max);
	}
	fuzz_frame(data, size, size > 0 ? size : 1, VARLINK_MESSAGE_MAX);
	fuzz_server(data, size);
	return 0;
}
