/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Varlink: framing and call parsing fed bytes directly; the server driven over
 * socketpairs on an sd-event loop that the test runs by hand (run_until_idle), so
 * every assertion is about what the server did, never about how long it took; the
 * blocking client against a real listening socket served from a second thread.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "varlink.h"

/* ------------------------------------------------------------------ framing */

static void feed_str(VarlinkFrame *f, const char *s, size_t n)
{
	assert_int_equal(varlink_frame_feed(f, s, n), 0);
}

static void expect_msg(VarlinkFrame *f, const char *want)
{
	char *m = NULL;

	assert_int_equal(varlink_frame_next(f, &m), 1);
	assert_non_null(m);
	assert_string_equal(m, want);
	free(m);
}

static void expect_none(VarlinkFrame *f)
{
	char *m = (char *) 1;

	assert_int_equal(varlink_frame_next(f, &m), 0);
	assert_null(m);
}

static void test_frame_split_reads(void **state)
{
	static const char msg[] = "{\"method\":\"a.b\"}";
	VarlinkFrame f;

	varlink_frame_init(&f, VARLINK_MESSAGE_MAX);
	feed_str(&f, "{\"meth", 6);
	expect_none(&f);
	feed_str(&f, "od\":\"a.b\"}", 10);
	expect_none(&f);
	feed_str(&f, "", 1);  /* the NUL alone */
	expect_msg(&f, msg);
	expect_none(&f);
	assert_int_equal(varlink_frame_pending(&f), 0);

	/* One byte at a time, NUL included. */
	for (size_t i = 0; i < sizeof(msg); i++) {
		expect_none(&f);
		feed_str(&f, msg + i, 1);
	}
	expect_msg(&f, msg);
	expect_none(&f);
	varlink_frame_done(&f);
}

static void test_frame_several_in_one_read(void **state)
{
	static const char data[] = "{\"a\":1}\0{\"b\":2}\0\0{\"c\":";
	VarlinkFrame f;

	varlink_frame_init(&f, VARLINK_MESSAGE_MAX);
	feed_str(&f, data, sizeof(data) - 1);
	expect_msg(&f, "{\"a\":1}");
	expect_msg(&f, "{\"b\":2}");
	expect_msg(&f, "");  /* empty message: framed, left to the parser to refuse */
	expect_none(&f);
	assert_int_equal(varlink_frame_pending(&f), 5);
	feed_str(&f, "3}\0{\"d\":4}\0", 11);
	expect_msg(&f, "{\"c\":3}");
	expect_msg(&f, "{\"d\":4}");
	expect_none(&f);
	varlink_frame_done(&f);
}

static void test_frame_oversize(void **state)
{
	char big[64];
	VarlinkFrame f;

	memset(big, 'x', sizeof(big));

	/* max 16: 15 bytes + NUL is the largest message. */
	varlink_frame_init(&f, 16);
	feed_str(&f, big, 15);
	assert_int_equal(varlink_frame_feed(&f, "y", 1), -EMSGSIZE);
	/* A failed feed takes nothing: the 15 bytes can still be completed. */
	assert_int_equal(varlink_frame_pending(&f), 15);
	feed_str(&f, "", 1);
	expect_msg(&f, "xxxxxxxxxxxxxxx");

	/* Complete but too long in one feed. */
	big[16] = '\0';
	assert_int_equal(varlink_frame_feed(&f, big, 17), -EMSGSIZE);
	assert_int_equal(varlink_frame_pending(&f), 0);

	/* Exactly max with its NUL fits; the limit is per message, not per buffer. */
	big[15] = '\0';
	feed_str(&f, big, 16);
	feed_str(&f, big, 16);
	expect_msg(&f, "xxxxxxxxxxxxxxx");
	expect_msg(&f, "xxxxxxxxxxxxxxx");

	/* Too long after a good message in the same feed. */
	memset(big, 'x', sizeof(big));
	big[2] = '\0';
	assert_int_equal(varlink_frame_feed(&f, big, 40), -EMSGSIZE);
	expect_none(&f);
	varlink_frame_done(&f);

	/* The default limit: 1 MiB without a NUL is refused. */
	{
		size_t n = VARLINK_MESSAGE_MAX;
		char *huge = malloc(n);

		assert_non_null(huge);
		memset(huge, ' ', n);
		varlink_frame_init(&f, VARLINK_MESSAGE_MAX);
		assert_int_equal(varlink_frame_feed(&f, huge, n - 1), 0);
		assert_int_equal(varlink_frame_feed(&f, huge, 1), -EMSGSIZE);
		varlink_frame_done(&f);
		free(huge);
	}
}

/* ------------------------------------------------------------------ call parsing */

#define OK(t, m, p, o, mo) { .text = (t), .r = 0, .method = (m), .parameters = (p), .oneway = (o), .more = (mo) }
#define BAD(t) { .text = (t), .r = -EBADMSG }

static const struct {
	const char *text;
	int r;
	const char *method;
	const char *parameters;  /* expected, serialized plain */
	bool oneway, more;
} parse_cases[] = {
	OK("{\"method\":\"io.x.Get\"}", "io.x.Get", "{}", false, false),
	OK("{\"method\":\"io.x.Get\",\"parameters\":{\"a\":1}}", "io.x.Get", "{\"a\":1}", false, false),
	OK("{\"method\":\"io.x.Get\",\"parameters\":null}", "io.x.Get", "{}", false, false),
	OK("{\"method\":\"io.x.Get\",\"oneway\":true}", "io.x.Get", "{}", true, false),
	OK("{\"method\":\"io.x.Get\",\"more\":true,\"oneway\":false}", "io.x.Get", "{}", false, true),
	OK(" {\"method\":\"io.x.Get\"}\n", "io.x.Get", "{}", false, false),
	OK("{\"method\":\"io.x.Get\",\"upgrade\":false}", "io.x.Get", "{}", false, false),
	/* empty, not JSON, not an object */
	BAD(""),
	BAD("   "),
	BAD("{"),
	BAD("{\"method\":\"io.x.Get\""),
	BAD("{\"method\":\"io.x.Get\"}x"),
	BAD("{\"method\":\"io.x.Get\"}{}"),
	BAD("[]"),
	BAD("[{\"method\":\"io.x.Get\"}]"),
	BAD("42"),
	BAD("null"),
	BAD("\"io.x.Get\""),
	BAD("true"),
	BAD("{'method':'io.x.Get'}"),
	BAD("{\"method\":\"io.x.Get\",}"),
	BAD("\xff\xfe{}"),
	BAD("{\"method\":\"io.x.\xc3\x28\"}"),
	/* missing or bad method */
	BAD("{}"),
	BAD("{\"parameters\":{}}"),
	BAD("{\"method\":1}"),
	BAD("{\"method\":null}"),
	BAD("{\"method\":\"\"}"),
	BAD("{\"method\":{\"x\":1}}"),
	BAD("{\"method\":\"io.x\\u0000.Get\"}"),
	/* parameters not an object */
	BAD("{\"method\":\"io.x.Get\",\"parameters\":[]}"),
	BAD("{\"method\":\"io.x.Get\",\"parameters\":5}"),
	BAD("{\"method\":\"io.x.Get\",\"parameters\":\"{}\"}"),
	/* flags of the wrong type, an upgrade nobody offers */
	BAD("{\"method\":\"io.x.Get\",\"oneway\":1}"),
	BAD("{\"method\":\"io.x.Get\",\"more\":\"yes\"}"),
	BAD("{\"method\":\"io.x.Get\",\"upgrade\":true}"),
};

static void test_call_parse_table(void **state)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		VarlinkCall c = {};
		int r = varlink_call_parse(parse_cases[i].text, &c);

		if (r != parse_cases[i].r)
			fail_msg("case %zu '%s': got %d, want %d", i, parse_cases[i].text, r,
				 parse_cases[i].r);
		if (r < 0) {
			assert_null(c.method);
			assert_null(c.parameters);
			continue;
		}
		assert_string_equal(c.method, parse_cases[i].method);
		assert_string_equal(json_object_to_json_string_ext(c.parameters, JSON_C_TO_STRING_PLAIN),
				    parse_cases[i].parameters);
		assert_int_equal(c.oneway, parse_cases[i].oneway);
		assert_int_equal(c.more, parse_cases[i].more);
		varlink_call_done(&c);
		assert_null(c.method);
	}
}

static void test_call_parse_deep_nesting(void **state)
{
	/* Deeper than json-c's default depth: refused, not a stack overflow. */
	size_t depth = 100000, n = 0;
	char *s = malloc(depth * 2 + 64);
	VarlinkCall c = {};

	assert_non_null(s);
	n += sprintf(s, "{\"method\":\"a.b\",\"parameters\":{\"x\":");
	for (size_t i = 0; i < depth; i++)
		s[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		s[n++] = ']';
	strcpy(s + n, "}}");
	assert_int_equal(varlink_call_parse(s, &c), -EBADMSG);
	free(s);
}

/* ------------------------------------------------------------------ server over socketpairs */

typedef struct Fixture {
	sd_event *event;
	VarlinkServer *server;
	/* Asynchronous replies: the handler parks the connection here. */
	VarlinkConnection *parked;
	unsigned n_echo;
} Fixture;

static const char test_idl[] = "interface io.test\nmethod Echo(x: ?int) -> (x: ?int)\n";

static int method_echo(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Fixture *fx = userdata;

	fx->n_echo++;
	return varlink_reply(c, json_object_get(parameters));
}

static int method_peer(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	json_object *p;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int r;

	r = varlink_connection_get_peer(c, &pid, &uid, &gid);
	if (r < 0)
		return r;
	p = json_object_new_object();
	json_object_object_add(p, "pid", json_object_new_int64(pid));
	json_object_object_add(p, "uid", json_object_new_int64(uid));
	json_object_object_add(p, "gid", json_object_new_int64(gid));
	return varlink_reply(c, p);
}

static int method_later(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Fixture *fx = userdata;

	/* Answer later, from the test: the library keeps c alive until then. */
	fx->parked = c;
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

static int method_big(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	json_object *v;
	int64_t n = 0;
	char *s;
	int r;

	if (json_object_object_get_ex(parameters, "size", &v))
		n = json_object_get_int64(v);
	if (n <= 0 || n > 4 * (int64_t) VARLINK_MESSAGE_MAX)
		return -EINVAL;
	s = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	memset(s, 'z', n);
	s[n] = '\0';
	v = json_object_new_object();
	json_object_object_add(v, "data", json_object_new_string(s));
	free(s);
	r = varlink_reply(c, v);
	/* Too large a reply is refused; the connection gets closed by returning it. */
	return r;
}

/* Three progress replies when asked for more, then the final one. */
static int method_stream(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Fixture *fx = userdata;
	bool more = varlink_connection_wants_more(c);

	for (int i = 0; i < 3; i++) {
		json_object *p = json_object_new_object();

		json_object_object_add(p, "step", json_object_new_int(i));
		/* Without "more" nothing is sent, and that is not an error. */
		assert_int_equal(varlink_reply_continues(c, p), 0);
	}
	fx->n_echo += more;
	return varlink_reply(c, NULL);
}

/* Progress until the unread peer makes continues drop, then park for the final reply. */
static int method_flood(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Fixture *fx = userdata;
	int r;

	do {
		json_object *p = json_object_new_object();
		char *pad = malloc(200001);

		memset(pad, 'p', 200000);
		pad[200000] = '\0';
		json_object_object_add(p, "pad", json_object_new_string(pad));
		free(pad);
		r = varlink_reply_continues(c, p);
		fx->n_echo++;
	} while (r == 0 && fx->n_echo < 1000);
	assert_int_equal(r, -EAGAIN);
	fx->parked = c;
	return 0;
}

static const VarlinkMethod test_methods[] = {
	{ "io.test.Stream", method_stream },
	{ "io.test.Flood", method_flood },
	{ "io.test.Echo", method_echo },
	{ "io.test.Peer", method_peer },
	{ "io.test.Later", method_later },
	{ "io.test.Einval", method_einval },
	{ "io.test.Eio", method_eio },
	{ "io.test.Big", method_big },
	{}
};

static const VarlinkInterface test_interfaces[] = {
	{ "io.test", test_idl },
	{}
};

static const VarlinkServerInfo test_info = {
	.vendor = "coherentd tests", .product = "test-varlink", .version = "1", .url = "https://example.org",
};

static int setup(void **state)
{
	Fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(sd_event_new(&fx->event), 0);
	assert_int_equal(varlink_server_new(fx->event, &test_info, test_interfaces, test_methods, fx,
					    &fx->server), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	Fixture *fx = *state;

	varlink_server_free(fx->server);
	sd_event_unref(fx->event);
	free(fx);
	return 0;
}

/* Dispatch until nothing is ready. A server that spins (e.g. on a hung-up socket) fails. */
static void run_until_idle(Fixture *fx)
{
	for (unsigned i = 0;; i++) {
		int r = sd_event_run(fx->event, 0);

		assert_true(r >= 0);
		if (r == 0)
			return;
		if (i > 100000)
			fail_msg("event loop does not settle: server spinning");
	}
}

/* A connected client end; the other end is served. */
static int connect_pair(Fixture *fx)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(varlink_server_add_connection(fx->server, sv[1], NULL), 0);
	return sv[0];
}

static void send_raw(int fd, const void *data, size_t n)
{
	const char *p = data;

	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		assert_true(k > 0);
		p += k;
		n -= k;
	}
}

static void send_str(int fd, const char *s)
{
	send_raw(fd, s, strlen(s) + 1);
}

/*
 * Everything the server has sent so far, split into messages; 1 if the server
 * closed the connection after it, 0 if it is still open.
 */
typedef struct Received {
	char *msgs[16];
	size_t n;
	bool eof;
	VarlinkFrame frame;
} Received;

static void receive(int fd, Received *rx)
{
	char buf[65536];
	char *m;

	if (rx->frame.max == 0)
		varlink_frame_init(&rx->frame, VARLINK_MESSAGE_MAX);
	for (;;) {
		ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (k < 0 && errno == ECONNRESET) {
			rx->eof = true;
			break;
		}
		assert_true(k >= 0);
		if (k == 0) {
			rx->eof = true;
			break;
		}
		assert_int_equal(varlink_frame_feed(&rx->frame, buf, k), 0);
	}
	while (varlink_frame_next(&rx->frame, &m) > 0) {
		assert_true(rx->n < 16);
		rx->msgs[rx->n++] = m;
	}
}

static void received_done(Received *rx)
{
	for (size_t i = 0; i < rx->n; i++)
		free(rx->msgs[i]);
	varlink_frame_done(&rx->frame);
	*rx = (Received) {};
}

/* Round trip on a connection: send text, run the server, expect exactly one reply. */
static void expect_reply(Fixture *fx, int fd, const char *call, const char *want)
{
	Received rx = {};

	send_str(fd, call);
	run_until_idle(fx);
	receive(fd, &rx);
	if (rx.n != 1)
		fail_msg("'%s': %zu replies, want 1", call, rx.n);
	assert_string_equal(rx.msgs[0], want);
	assert_false(rx.eof);
	received_done(&rx);
}

static void test_server_builtins(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	char want[512];

	expect_reply(fx, fd, "{\"method\":\"org.varlink.service.GetInfo\"}",
		     "{\"parameters\":{\"vendor\":\"coherentd tests\",\"product\":\"test-varlink\","
		     "\"version\":\"1\",\"url\":\"https://example.org\","
		     "\"interfaces\":[\"org.varlink.service\",\"io.test\"]}}");

	snprintf(want, sizeof(want), "{\"parameters\":{\"description\":\"%s\"}}",
		 "interface io.test\\nmethod Echo(x: ?int) -> (x: ?int)\\n");
	expect_reply(fx, fd,
		     "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{\"interface\":\"io.test\"}}",
		     want);

	expect_reply(fx, fd,
		     "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{\"interface\":\"io.nope\"}}",
		     "{\"error\":\"org.varlink.service.InterfaceNotFound\",\"parameters\":{\"interface\":\"io.nope\"}}");
	expect_reply(fx, fd, "{\"method\":\"org.varlink.service.GetInterfaceDescription\"}",
		     "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"interface\"}}");
	expect_reply(fx, fd,
		     "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{\"interface\":7}}",
		     "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"interface\"}}");

	/* The service interface describes itself. */
	{
		Received rx = {};
		json_object *o, *p, *d;

		send_str(fd, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
			     "\"parameters\":{\"interface\":\"org.varlink.service\"}}");
		run_until_idle(fx);
		receive(fd, &rx);
		assert_int_equal(rx.n, 1);
		o = json_tokener_parse(rx.msgs[0]);
		assert_non_null(o);
		assert_true(json_object_object_get_ex(o, "parameters", &p));
		assert_true(json_object_object_get_ex(p, "description", &d));
		assert_non_null(strstr(json_object_get_string(d), "interface org.varlink.service\n"));
		assert_non_null(strstr(json_object_get_string(d), "method GetInfo()"));
		json_object_put(o);
		received_done(&rx);
	}
	close(fd);
}

static void test_server_not_found(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);

	expect_reply(fx, fd, "{\"method\":\"io.test.Nope\"}",
		     "{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"io.test.Nope\"}}");
	expect_reply(fx, fd, "{\"method\":\"org.varlink.service.Nope\"}",
		     "{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"org.varlink.service.Nope\"}}");
	expect_reply(fx, fd, "{\"method\":\"io.other.Get\"}",
		     "{\"error\":\"org.varlink.service.InterfaceNotFound\",\"parameters\":{\"interface\":\"io.other\"}}");
	/* A prefix of a known interface is not that interface. */
	expect_reply(fx, fd, "{\"method\":\"io.tes.Echo\"}",
		     "{\"error\":\"org.varlink.service.InterfaceNotFound\",\"parameters\":{\"interface\":\"io.tes\"}}");
	expect_reply(fx, fd, "{\"method\":\"Echo\"}",
		     "{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"Echo\"}}");
	expect_reply(fx, fd, "{\"method\":\"io.test.\"}",
		     "{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"io.test.\"}}");
	/* Still serving. */
	expect_reply(fx, fd, "{\"method\":\"io.test.Echo\",\"parameters\":{\"x\":1}}",
		     "{\"parameters\":{\"x\":1}}");
	close(fd);
}

static void test_server_malformed(void **state)
{
	static const struct {
		const char *text;
		const char *parameter;
	} cases[] = {
		{ "", "message" },
		{ "not json", "message" },
		{ "{\"method\":", "message" },
		{ "[1,2,3]", "message" },
		{ "\"io.test.Echo\"", "message" },
		{ "{}", "method" },
		{ "{\"method\":42}", "method" },
		{ "{\"method\":\"io.test.Echo\",\"parameters\":[]}", "parameters" },
		{ "{\"method\":\"io.test.Echo\",\"oneway\":\"no\"}", "oneway" },
	};
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	char want[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(want, sizeof(want),
			 "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"%s\"}}",
			 cases[i].parameter);
		expect_reply(fx, fd, cases[i].text, want);
	}
	assert_int_equal(fx->n_echo, 0);
	/* The connection survives malformed messages: the framing was intact. */
	expect_reply(fx, fd, "{\"method\":\"io.test.Echo\"}", "{\"parameters\":{}}");
	assert_int_equal(varlink_server_n_connections(fx->server), 1);
	close(fd);
}

static void test_server_handler_errors(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx), fd2;
	Received rx = {};

	expect_reply(fx, fd, "{\"method\":\"io.test.Einval\"}",
		     "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"parameters\"}}");

	/* Any other error closes that connection, and only that one. */
	fd2 = connect_pair(fx);
	send_str(fd, "{\"method\":\"io.test.Eio\"}");
	run_until_idle(fx);
	receive(fd, &rx);
	assert_int_equal(rx.n, 0);
	assert_true(rx.eof);
	received_done(&rx);
	assert_int_equal(varlink_server_n_connections(fx->server), 1);
	expect_reply(fx, fd2, "{\"method\":\"io.test.Echo\"}", "{\"parameters\":{}}");
	close(fd);
	close(fd2);
}

static void test_server_pipelined_and_oneway(void **state)
{
	static const char calls[] =
		"{\"method\":\"io.test.Echo\",\"parameters\":{\"x\":1}}\0"
		"{\"method\":\"io.test.Echo\",\"parameters\":{\"x\":2},\"oneway\":true}\0"
		"{\"method\":\"io.test.Nope\",\"oneway\":true}\0"
		"{\"method\":\"io.test.Echo\",\"parameters\":{\"x\":3}}\0";
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	Received rx = {};

	send_raw(fd, calls, sizeof(calls) - 1);
	run_until_idle(fx);
	receive(fd, &rx);
	/* Oneway calls run but get no reply, not even an error. */
	assert_int_equal(rx.n, 2);
	assert_string_equal(rx.msgs[0], "{\"parameters\":{\"x\":1}}");
	assert_string_equal(rx.msgs[1], "{\"parameters\":{\"x\":3}}");
	assert_int_equal(fx->n_echo, 3);
	received_done(&rx);
	close(fd);
}

static void test_server_async_reply(void **state)
{
	static const char calls[] =
		"{\"method\":\"io.test.Later\"}\0"
		"{\"method\":\"io.test.Echo\",\"parameters\":{\"x\":2}}\0";
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	Received rx = {};

	send_raw(fd, calls, sizeof(calls) - 1);
	run_until_idle(fx);
	receive(fd, &rx);
	/* Calls are answered in order: Echo waits behind the pending Later. */
	assert_int_equal(rx.n, 0);
	assert_int_equal(fx->n_echo, 0);
	assert_non_null(fx->parked);

	assert_int_equal(varlink_reply(fx->parked, json_object_new_object()), 0);
	/* Answering twice is refused. */
	assert_int_equal(varlink_reply(fx->parked, NULL), -EBADE);
	fx->parked = NULL;
	run_until_idle(fx);
	receive(fd, &rx);
	assert_int_equal(rx.n, 2);
	assert_string_equal(rx.msgs[0], "{\"parameters\":{}}");
	assert_string_equal(rx.msgs[1], "{\"parameters\":{\"x\":2}}");
	received_done(&rx);
	close(fd);
}

static void test_server_async_peer_gone(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);

	send_str(fd, "{\"method\":\"io.test.Later\"}");
	run_until_idle(fx);
	assert_non_null(fx->parked);

	/* The client leaves while its call is pending: no spinning on the hang-up ... */
	close(fd);
	run_until_idle(fx);
	assert_int_equal(varlink_server_n_connections(fx->server), 0);
	/* ... and the late reply is harmless (no SIGPIPE, no use after free). */
	assert_int_equal(varlink_reply_error(fx->parked, "io.test.Gone", NULL), -ENOTCONN);
	fx->parked = NULL;
}

static void test_server_async_reply_epipe(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);

	send_str(fd, "{\"method\":\"io.test.Later\"}");
	run_until_idle(fx);
	assert_non_null(fx->parked);
	/* Closed but not yet noticed by the loop: the send hits EPIPE, not SIGPIPE. */
	close(fd);
	assert_int_equal(varlink_reply(fx->parked, NULL), 0);
	fx->parked = NULL;
	run_until_idle(fx);
	assert_int_equal(varlink_server_n_connections(fx->server), 0);
}

static void test_server_more(void **state)
{
	static const char calls[] =
		"{\"method\":\"io.test.Stream\",\"more\":true}\0"
		"{\"method\":\"io.test.Stream\"}\0"
		"{\"method\":\"io.test.Stream\",\"more\":true,\"oneway\":true}\0"
		"{\"method\":\"io.test.Echo\",\"parameters\":{\"x\":7}}\0";
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	Received rx = {};

	send_raw(fd, calls, sizeof(calls) - 1);
	run_until_idle(fx);
	receive(fd, &rx);
	assert_int_equal(rx.n, 6);
	assert_string_equal(rx.msgs[0], "{\"parameters\":{\"step\":0},\"continues\":true}");
	assert_string_equal(rx.msgs[1], "{\"parameters\":{\"step\":1},\"continues\":true}");
	assert_string_equal(rx.msgs[2], "{\"parameters\":{\"step\":2},\"continues\":true}");
	assert_string_equal(rx.msgs[3], "{\"parameters\":{}}");
	/* Not asked for more: one reply. Oneway: none at all. Then the next call. */
	assert_string_equal(rx.msgs[4], "{\"parameters\":{}}");
	assert_string_equal(rx.msgs[5], "{\"parameters\":{\"x\":7}}");
	received_done(&rx);
	/* One Stream saw "more" (not the oneway one), plus the Echo. */
	assert_int_equal(fx->n_echo, 2);
	close(fd);
}

static void test_server_more_unread(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	Received rx = {};
	size_t n_continues = 0;
	bool final = false;

	send_str(fd, "{\"method\":\"io.test.Flood\",\"more\":true}");
	run_until_idle(fx);
	assert_non_null(fx->parked);
	/* Bounded: progress stopped being queued once the peer fell behind. */
	assert_true(fx->n_echo < 1000);
	assert_int_equal(varlink_reply(fx->parked, NULL), 0);
	fx->parked = NULL;

	/* The final reply is never dropped: it arrives after what was queued. */
	while (!final) {
		run_until_idle(fx);
		receive(fd, &rx);
		assert_false(rx.eof);
		for (size_t i = 0; i < rx.n; i++) {
			assert_false(final);
			if (strcmp(rx.msgs[i], "{\"parameters\":{}}") == 0)
				final = true;
			else
				n_continues++;
		}
		received_done(&rx);
	}
	assert_true(n_continues > 0);
	assert_true(n_continues < fx->n_echo);
	close(fd);
}

static void test_server_peer_credentials(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	char want[256];

	/* socketpair() credentials are the creator's: this process. */
	snprintf(want, sizeof(want), "{\"parameters\":{\"pid\":%d,\"uid\":%u,\"gid\":%u}}", (int) getpid(),
		 (unsigned) getuid(), (unsigned) getgid());
	expect_reply(fx, fd, "{\"method\":\"io.test.Peer\"}", want);
	close(fd);
}

static void test_server_oversize_closes(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx), other = connect_pair(fx);
	size_t n = VARLINK_MESSAGE_MAX + 4096, off = 0;
	char *blob = malloc(n);
	Received rx = {};

	assert_non_null(blob);
	memset(blob, '{', n);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	/* Feed the server as fast as it reads; it must hang up once past the limit. */
	while (off < n) {
		ssize_t k = send(fd, blob + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k < 0 && (errno == EPIPE || errno == ECONNRESET))
			break;
		if (k > 0)
			off += k;
		run_until_idle(fx);
	}
	run_until_idle(fx);
	receive(fd, &rx);
	assert_true(rx.eof);
	assert_int_equal(rx.n, 0);
	received_done(&rx);
	assert_int_equal(varlink_server_n_connections(fx->server), 1);

	/* The other client is unaffected. */
	expect_reply(fx, other, "{\"method\":\"io.test.Echo\"}", "{\"parameters\":{}}");
	free(blob);
	close(fd);
	close(other);
}

static void test_server_stalled_half_message(void **state)
{
	Fixture *fx = *state;
	int stalled = connect_pair(fx), other = connect_pair(fx);
	Received rx = {};

	send_raw(stalled, "{\"method\":\"io.test.Ec", 21);
	run_until_idle(fx);
	expect_reply(fx, other, "{\"method\":\"io.test.Echo\",\"parameters\":{\"x\":5}}",
		     "{\"parameters\":{\"x\":5}}");

	/* The stalled one completes later and is answered. */
	send_str(stalled, "ho\"}");
	run_until_idle(fx);
	receive(stalled, &rx);
	assert_int_equal(rx.n, 1);
	assert_string_equal(rx.msgs[0], "{\"parameters\":{}}");
	received_done(&rx);

	/* EOF in the middle of a message: the fragment is dropped, the connection closed. */
	send_raw(stalled, "{\"meth", 6);
	shutdown(stalled, SHUT_WR);
	run_until_idle(fx);
	receive(stalled, &rx);
	assert_int_equal(rx.n, 0);
	assert_true(rx.eof);
	received_done(&rx);
	assert_int_equal(varlink_server_n_connections(fx->server), 1);
	close(stalled);
	close(other);
}

static void test_server_answers_before_eof(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	Received rx = {};

	/* Like `printf 'call\0' | socat - UNIX-CONNECT:...`: write, shut down, read. */
	send_str(fd, "{\"method\":\"io.test.Echo\",\"parameters\":{\"x\":9}}");
	shutdown(fd, SHUT_WR);
	run_until_idle(fx);
	receive(fd, &rx);
	assert_int_equal(rx.n, 1);
	assert_string_equal(rx.msgs[0], "{\"parameters\":{\"x\":9}}");
	assert_true(rx.eof);
	received_done(&rx);
	assert_int_equal(varlink_server_n_connections(fx->server), 0);
	close(fd);
}

static void test_server_write_queue(void **state)
{
	/* Replies bigger than the socket buffer, to a client that is not reading yet. */
	static const char call[] = "{\"method\":\"io.test.Big\",\"parameters\":{\"size\":900000}}";
	Fixture *fx = *state;
	int fd = connect_pair(fx), other = connect_pair(fx);
	Received rx = {};
	size_t total = 0;

	for (int i = 0; i < 5; i++)
		send_str(fd, call);
	run_until_idle(fx);

	/* The server did not block on the full socket: another client is served. */
	expect_reply(fx, other, "{\"method\":\"io.test.Echo\"}", "{\"parameters\":{}}");

	/* Drain: every reply arrives whole and in order. */
	while (rx.n < 5) {
		size_t before = rx.n;

		receive(fd, &rx);
		run_until_idle(fx);
		for (size_t i = before; i < rx.n; i++) {
			assert_int_equal(strlen(rx.msgs[i]), 900000 + strlen("{\"parameters\":{\"data\":\"\"}}"));
			total++;
		}
		assert_false(rx.eof);
	}
	assert_int_equal(total, 5);
	received_done(&rx);
	close(fd);
	close(other);
}

static void test_server_reply_too_big(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);
	char call[128];
	Received rx = {};

	/* A reply larger than the peer accepts is not sent; the handler's error closes. */
	snprintf(call, sizeof(call), "{\"method\":\"io.test.Big\",\"parameters\":{\"size\":%u}}",
		 VARLINK_MESSAGE_MAX);
	send_str(fd, call);
	run_until_idle(fx);
	receive(fd, &rx);
	assert_int_equal(rx.n, 0);
	assert_true(rx.eof);
	received_done(&rx);
	close(fd);
}

static void test_server_connection_limit(void **state)
{
	Fixture *fx = *state;
	int a, b, sv[2];
	Received rx = {};

	assert_int_equal(varlink_server_set_connections_max(fx->server, 2, 0), 0);
	a = connect_pair(fx);
	b = connect_pair(fx);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(varlink_server_add_connection(fx->server, sv[1], NULL), -EBUSY);
	assert_int_equal(varlink_server_n_refused(fx->server), 1);
	/* The refused peer sees EOF at once. */
	receive(sv[0], &rx);
	assert_true(rx.eof);
	received_done(&rx);
	close(sv[0]);

	/* A slot frees up when a client leaves. */
	close(a);
	run_until_idle(fx);
	assert_int_equal(varlink_server_n_connections(fx->server), 1);
	a = connect_pair(fx);
	expect_reply(fx, a, "{\"method\":\"io.test.Echo\"}", "{\"parameters\":{}}");
	expect_reply(fx, b, "{\"method\":\"io.test.Echo\"}", "{\"parameters\":{}}");
	close(a);
	close(b);
}

static void test_server_per_uid_limit(void **state)
{
	Fixture *fx = *state;
	int a, sv[2];

	/* Root is exempt from the per-UID limit; as non-root, the second connection is refused. */
	assert_int_equal(varlink_server_set_connections_max(fx->server, 10, 1), 0);
	a = connect_pair(fx);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	if (getuid() == 0) {
		assert_int_equal(varlink_server_add_connection(fx->server, sv[1], NULL), 0);
		assert_int_equal(varlink_server_n_connections(fx->server), 2);
	} else {
		assert_int_equal(varlink_server_add_connection(fx->server, sv[1], NULL), -EBUSY);
		assert_int_equal(varlink_server_n_connections(fx->server), 1);
	}
	close(sv[0]);
	close(a);
}

static int guard_expired(sd_event_source *s, uint64_t usec, void *userdata)
{
	*(bool *) userdata = true;
	return 0;
}

static void test_server_idle_timeout(void **state)
{
	Fixture *fx = *state;
	sd_event_source *guard = NULL;
	bool expired = false;
	int stalled, busy;
	Received rx = {};

	assert_int_equal(varlink_server_set_idle_timeout(fx->server, 1000), 0);
	stalled = connect_pair(fx);
	send_raw(stalled, "{\"method\":", 10);
	busy = connect_pair(fx);
	send_str(busy, "{\"method\":\"io.test.Later\"}");

	/*
	 * Block until the stalled connection is dropped: the wait ends when the timer
	 * fires, however long that takes, so nothing here depends on the clock. The
	 * guard only turns "never dropped" into a failure instead of a hang.
	 */
	assert_int_equal(sd_event_add_time_relative(fx->event, &guard, CLOCK_MONOTONIC,
						    120 * 1000000ULL, 0, guard_expired, &expired), 0);
	while (varlink_server_n_connections(fx->server) > 1 && !expired)
		assert_true(sd_event_run(fx->event, UINT64_MAX) >= 0);
	sd_event_source_disable_unref(guard);
	assert_false(expired);
	receive(stalled, &rx);
	assert_true(rx.eof);
	received_done(&rx);

	/* A connection with a pending call is not idle. */
	assert_int_equal(varlink_server_n_connections(fx->server), 1);
	assert_non_null(fx->parked);
	assert_int_equal(varlink_reply(fx->parked, NULL), 0);
	fx->parked = NULL;
	run_until_idle(fx);
	receive(busy, &rx);
	assert_int_equal(rx.n, 1);
	received_done(&rx);
	close(stalled);
	close(busy);
}

static void test_server_free_with_pending(void **state)
{
	Fixture *fx = *state;
	int fd = connect_pair(fx);

	send_str(fd, "{\"method\":\"io.test.Later\"}");
	run_until_idle(fx);
	assert_non_null(fx->parked);
	fx->server = varlink_server_free(fx->server);
	/* The parked connection outlives its server until answered. */
	assert_int_equal(varlink_reply(fx->parked, NULL), -ENOTCONN);
	fx->parked = NULL;
	close(fd);
}

static void test_server_out_of_fds(void **state)
{
	Fixture *fx = *state;
	char dir[] = "/tmp/test-varlink-XXXXXX", path[256];
	struct rlimit old, low;
	VarlinkClient *a = NULL, *b = NULL;
	json_object *p = NULL;
	char *error = NULL;
	int free_fd;

	/* sd-event creates its timerfd with the first idle timer: not under the low limit. */
	close(connect_pair(fx));
	run_until_idle(fx);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	assert_int_equal(varlink_server_listen_address(fx->server, path), 0);
	assert_int_equal(varlink_client_connect(path, &a), 0);
	assert_int_equal(varlink_client_connect(path, &b), 0);

	/* Allow exactly one more fd: the server accepts a, then accept() fails with EMFILE. */
	free_fd = dup(0);
	assert_true(free_fd >= 0);
	close(free_fd);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = free_fd + 1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

	/* No spinning on the listener that keeps reporting b (run_until_idle fails on that). */
	run_until_idle(fx);
	assert_int_equal(varlink_server_n_connections(fx->server), 1);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);

	/* a leaves: accepting resumes and b is served. */
	a = varlink_client_free(a);
	run_until_idle(fx);
	assert_int_equal(varlink_server_n_connections(fx->server), 1);
	assert_int_equal(varlink_client_send(b, "io.test.Echo", NULL, false, 0), 0);
	run_until_idle(fx);
	assert_int_equal(varlink_client_receive(b, 0, &p, &error), 0);
	assert_null(error);
	json_object_put(p);
	b = varlink_client_free(b);
	run_until_idle(fx);
	assert_int_equal(varlink_server_n_connections(fx->server), 0);
	unlink(path);
	rmdir(dir);
}

/* ------------------------------------------------------------------ real socket + client */

typedef struct ClientThread {
	char path[256];
	atomic_bool done;
	int failures;
	char detail[256];
} ClientThread;

#define CT_CHECK(ct, cond)                                                             \
	do {                                                                           \
		if (!(cond)) {                                                         \
			(ct)->failures++;                                              \
			snprintf((ct)->detail, sizeof((ct)->detail), "%s:%d: %s", __FILE__, \
				 __LINE__, #cond);                                     \
			goto out;                                                      \
		}                                                                      \
	} while (0)

static void *client_thread(void *arg)
{
	ClientThread *ct = arg;
	VarlinkClient *c = NULL;
	json_object *p = NULL, *v, *in;
	char *error = NULL;
	int r;

	r = varlink_client_connect(ct->path, &c);
	CT_CHECK(ct, r == 0);

	r = varlink_client_call(c, "org.varlink.service.GetInfo", NULL, 0, &p, &error);
	CT_CHECK(ct, r == 0 && !error);
	CT_CHECK(ct, json_object_object_get_ex(p, "product", &v));
	CT_CHECK(ct, strcmp(json_object_get_string(v), "test-varlink") == 0);
	json_object_put(p);
	p = NULL;

	in = json_object_new_object();
	json_object_object_add(in, "x", json_object_new_int(42));
	r = varlink_client_call(c, "io.test.Echo", in, 0, &p, &error);
	json_object_put(in);
	CT_CHECK(ct, r == 0 && !error);
	CT_CHECK(ct, json_object_object_get_ex(p, "x", &v) && json_object_get_int(v) == 42);
	json_object_put(p);
	p = NULL;

	/* An error reply: name and parameters, r == 0. */
	r = varlink_client_call(c, "io.test.Nope", NULL, 0, &p, &error);
	CT_CHECK(ct, r == 0 && error);
	CT_CHECK(ct, strcmp(error, VARLINK_ERROR_METHOD_NOT_FOUND) == 0);
	CT_CHECK(ct, json_object_object_get_ex(p, "method", &v));
	CT_CHECK(ct, strcmp(json_object_get_string(v), "io.test.Nope") == 0);
	free(error);
	error = NULL;
	json_object_put(p);
	p = NULL;

	/* More: continues, then the final reply. */
	{
		bool continues = true;
		int steps = 0;

		r = varlink_client_send_ext(c, "io.test.Stream", NULL, true, 0);
		CT_CHECK(ct, r == 0);
		while (continues) {
			r = varlink_client_receive_ext(c, 0, &p, &error, &continues);
			CT_CHECK(ct, r == 0 && !error);
			json_object_put(p);
			p = NULL;
			steps++;
		}
		CT_CHECK(ct, steps == 4);
	}

	/* Oneway: nothing to receive; the next call's reply is the next message. */
	r = varlink_client_send(c, "io.test.Echo", NULL, true, 0);
	CT_CHECK(ct, r == 0);
	r = varlink_client_call(c, "io.test.Peer", NULL, 0, &p, &error);
	CT_CHECK(ct, r == 0 && !error);
	CT_CHECK(ct, json_object_object_get_ex(p, "pid", &v) && json_object_get_int(v) == getpid());

out:
	json_object_put(p);
	free(error);
	/* Done before closing: the close is what wakes the server loop to see it. */
	atomic_store(&ct->done, true);
	varlink_client_free(c);
	return NULL;
}

static void test_client_server_socket(void **state)
{
	Fixture *fx = *state;
	char dir[] = "/tmp/test-varlink-XXXXXX";
	ClientThread ct = {};
	pthread_t t;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(ct.path, sizeof(ct.path), "%s/sock", dir);

	/* Nothing there yet. */
	{
		VarlinkClient *c = NULL;

		assert_int_equal(varlink_client_connect(ct.path, &c), -ENOENT);
		assert_null(c);
	}

	assert_int_equal(varlink_server_listen_address(fx->server, ct.path), 0);
	assert_int_equal(stat(ct.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0666);

	assert_int_equal(pthread_create(&t, NULL, client_thread, &ct), 0);
	/* The client's last act is closing its connection, which wakes the loop. */
	while (!atomic_load(&ct.done) || varlink_server_n_connections(fx->server) > 0)
		assert_true(sd_event_run(fx->event, UINT64_MAX) >= 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (ct.failures)
		fail_msg("client: %s", ct.detail);

	/* A second server replaces the stale socket; a regular file is never removed. */
	fx->server = varlink_server_free(fx->server);
	{
		VarlinkClient *c = NULL;

		assert_int_equal(varlink_client_connect(ct.path, &c), -ECONNREFUSED);
	}
	assert_int_equal(varlink_server_new(fx->event, &test_info, test_interfaces, test_methods, fx,
					    &fx->server), 0);
	assert_int_equal(varlink_server_listen_address(fx->server, ct.path), 0);
	unlink(ct.path);
	{
		int f = open(ct.path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

		assert_true(f >= 0);
		close(f);
	}
	assert_int_equal(varlink_server_listen_address(fx->server, ct.path), -EEXIST);
	assert_int_equal(unlink(ct.path), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_client_timeout_and_errors(void **state)
{
	char dir[] = "/tmp/test-varlink-XXXXXX", path[256], longpath[200];
	VarlinkClient *c = NULL;
	json_object *p = NULL;
	char *error = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);

	/* Something listens but never answers: the client gives up, it does not hang. */
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(varlink_client_connect(path, &c), 0);
	assert_int_equal(varlink_client_call(c, "io.test.Echo", NULL, 1000, &p, &error), -ETIMEDOUT);
	assert_null(p);
	assert_null(error);
	c = varlink_client_free(c);

	/* The server hangs up without answering. */
	assert_int_equal(varlink_client_connect(path, &c), 0);
	{
		int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		assert_true(afd >= 0);
		/* Accepted earlier connection is still in the backlog: take both. */
		close(afd);
		afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		assert_true(afd >= 0);
		close(afd);
	}
	/* Closed before the call was written: EPIPE, and never a SIGPIPE. */
	assert_int_equal(varlink_client_call(c, "io.test.Echo", NULL, 0, &p, &error), -EPIPE);
	c = varlink_client_free(c);

	/* A reply that is not varlink. */
	assert_int_equal(varlink_client_connect(path, &c), 0);
	{
		int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		assert_true(afd >= 0);
		assert_int_equal(send(afd, "[1]", 4, MSG_NOSIGNAL), 4);
		assert_int_equal(varlink_client_call(c, "io.test.Echo", NULL, 0, &p, &error), -EBADMSG);
		close(afd);
	}
	c = varlink_client_free(c);

	close(lfd);
	unlink(path);
	rmdir(dir);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(varlink_client_connect(longpath, &c), -ENAMETOOLONG);
	assert_int_equal(varlink_client_connect("", &c), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_split_reads),
		cmocka_unit_test(test_frame_several_in_one_read),
		cmocka_unit_test(test_frame_oversize),
		cmocka_unit_test(test_call_parse_table),
		cmocka_unit_test(test_call_parse_deep_nesting),
		cmocka_unit_test_setup_teardown(test_server_builtins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_handler_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_pipelined_and_oneway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_async_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_async_peer_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_async_reply_epipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_more, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_more_unread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_peer_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_oversize_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_stalled_half_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_answers_before_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_write_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_reply_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_connection_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_per_uid_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_free_with_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_out_of_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_server_socket, setup, teardown),
		cmocka_unit_test(test_client_timeout_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
