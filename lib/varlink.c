/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Varlink over AF_UNIX stream sockets. See varlink.h for the contract.
 *
 * Server model: one sd-event IO source per connection, level-triggered. Input is read
 * in bounded chunks into a VarlinkFrame; complete messages are dispatched one at a
 * time and in order. While a call awaits its (possibly asynchronous) reply, or while
 * the peer does not read its replies, the connection stops reading, so a connection
 * never holds more than about one message of input and a bounded amount of output.
 * Nothing blocks: a peer that sends half a message and stalls only costs its own
 * buffer and, after the idle timeout, its connection.
 *
 * The library never logs: errors are returned, per-connection failures close that
 * connection.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "varlink.h"

#define VARLINK_READ_CHUNK        (64U * 1024U)
/* Stop dispatching further calls while this much output waits for the peer. */
#define VARLINK_OUTPUT_HIGH       (2U * VARLINK_MESSAGE_MAX)
/* Give a large input buffer back once it is empty again. */
#define VARLINK_FRAME_KEEP        (64U * 1024U)

static const char interface_org_varlink_service[] =
	"# The Varlink Service Interface is provided by every varlink service. It\n"
	"# describes the service and the interfaces it implements.\n"
	"interface org.varlink.service\n"
	"\n"
	"# Get a list of all the interfaces a service provides and information\n"
	"# about the implementation.\n"
	"method GetInfo() -> (\n"
	"  vendor: string,\n"
	"  product: string,\n"
	"  version: string,\n"
	"  url: string,\n"
	"  interfaces: []string\n"
	")\n"
	"\n"
	"# Get the description of an interface that is implemented by this service.\n"
	"method GetInterfaceDescription(interface: string) -> (description: string)\n"
	"\n"
	"# The requested interface was not found.\n"
	"error InterfaceNotFound (interface: string)\n"
	"\n"
	"# The requested method was not found\n"
	"error MethodNotFound (method: string)\n"
	"\n"
	"# The interface defines the requested method, but the service does not\n"
	"# implement it.\n"
	"error MethodNotImplemented (method: string)\n"
	"\n"
	"# One of the passed parameters is invalid.\n"
	"error InvalidParameter (parameter: string)\n"
	"\n"
	"# Client is denied access\n"
	"error PermissionDenied ()\n"
	"\n"
	"# Method is expected to be called with 'more' set to true, but wasn't\n"
	"error ExpectedMore ()\n";

/* ------------------------------------------------------------------ framing */

void varlink_frame_init(VarlinkFrame *f, size_t max)
{
	*f = (VarlinkFrame) { .max = max > 0 ? max : VARLINK_MESSAGE_MAX };
}

void varlink_frame_done(VarlinkFrame *f)
{
	size_t max = f->max;

	free(f->buf);
	varlink_frame_init(f, max);
}

size_t varlink_frame_pending(const VarlinkFrame *f)
{
	return f->len - f->start;
}

int varlink_frame_feed(VarlinkFrame *f, const void *data, size_t n)
{
	const char *p = data, *end = p + n, *nul;
	size_t tail = f->tail, need;

	if (n == 0)
		return 0;
	if (!data)
		return -EINVAL;

	/*
	 * Validate everything before taking anything, so a failed feed leaves the frame
	 * as it was: every message completed here, NUL included, fits in max, and the
	 * unterminated rest can still be completed within max.
	 */
	for (const char *q = p; q < end; q = nul + 1) {
		nul = memchr(q, '\0', end - q);
		if (!nul) {
			if ((size_t) (end - q) >= f->max - tail)
				return -EMSGSIZE;
			tail += end - q;
			break;
		}
		if ((size_t) (nul - q) >= f->max - tail)
			return -EMSGSIZE;
		tail = 0;
	}

	/* Drop what was already taken before growing. */
	if (f->start > 0) {
		memmove(f->buf, f->buf + f->start, f->len - f->start);
		f->len -= f->start;
		f->start = 0;
	}

	if (n > SIZE_MAX - f->len)
		return -ENOMEM;
	need = f->len + n;
	if (need > f->alloc) {
		size_t a = f->alloc > 0 ? f->alloc : 4096;
		char *b;

		while (a < need)
			a = a > SIZE_MAX / 2 ? need : a * 2;
		b = realloc(f->buf, a);
		if (!b)
			return -ENOMEM;
		f->buf = b;
		f->alloc = a;
	}

	memcpy(f->buf + f->len, data, n);
	f->len += n;
	f->tail = tail;
	return 0;
}

int varlink_frame_next(VarlinkFrame *f, char **ret_msg)
{
	const char *s, *nul;
	char *m;
	size_t l;

	/* Only an unterminated tail is buffered: nothing to take, and no need to scan. */
	if (f->len - f->start <= f->tail) {
		*ret_msg = NULL;
		return 0;
	}

	s = f->buf + f->start;
	nul = memchr(s, '\0', f->len - f->start);
	if (!nul) {
		/* Cannot happen: tail accounting says there is a NUL. */
		*ret_msg = NULL;
		return -EBADMSG;
	}

	l = nul - s;
	m = malloc(l + 1);
	if (!m)
		return -ENOMEM;
	memcpy(m, s, l + 1);

	f->start += l + 1;
	if (f->start == f->len) {
		f->start = f->len = 0;
		if (f->alloc > VARLINK_FRAME_KEEP) {
			free(f->buf);
			f->buf = NULL;
			f->alloc = 0;
		}
	}

	*ret_msg = m;
	return 1;
}

/* --------------------------------------------------------------- call parsing */

static int json_parse_strict(const char *text, json_object **ret)
{
	struct json_tokener *tok;
	json_object *o;
	size_t l = strlen(text), end = 0;

	if (l > INT32_MAX)
		return -EMSGSIZE;

	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

	o = json_tokener_parse_ex(tok, text, (int) l);
	if (o && json_tokener_get_error(tok) == json_tokener_success)
		end = json_tokener_get_parse_end(tok);
	if (end < l)
		end += strspn(text + end, " \t\r\n");
	if (!o || json_tokener_get_error(tok) != json_tokener_success || end != l) {
		/* Incomplete, malformed, trailing garbage, or a bare "null". */
		json_object_put(o);
		json_tokener_free(tok);
		return -EBADMSG;
	}

	json_tokener_free(tok);
	*ret = o;
	return 0;
}

/*
 * As varlink_call_parse(), and on -EBADMSG names the offending field ("message" when
 * the text is not a JSON object at all), so the server can say what was wrong.
 */
static int call_parse(const char *text, VarlinkCall *ret, const char **ret_field)
{
	json_object *o = NULL, *m, *p, *b;
	VarlinkCall c = {};
	const char *field = "message";
	int r;

	r = json_parse_strict(text, &o);
	if (r < 0)
		goto fail;
	r = -EBADMSG;
	if (!json_object_is_type(o, json_type_object))
		goto fail;

	field = "method";
	if (!json_object_object_get_ex(o, "method", &m) || !json_object_is_type(m, json_type_string) ||
	    json_object_get_string_len(m) == 0)
		goto fail;
	/* A method name is a plain string: no embedded NUL ("\u0000") sneaking past C. */
	if (strlen(json_object_get_string(m)) != (size_t) json_object_get_string_len(m))
		goto fail;

	field = "parameters";
	if (json_object_object_get_ex(o, "parameters", &p) && p) {
		if (!json_object_is_type(p, json_type_object))
			goto fail;
		c.parameters = json_object_get(p);
	} else {
		/* Absent, or explicitly null. */
		c.parameters = json_object_new_object();
		if (!c.parameters) {
			r = -ENOMEM;
			goto fail;
		}
	}

	field = "oneway";
	if (json_object_object_get_ex(o, "oneway", &b) && b) {
		if (!json_object_is_type(b, json_type_boolean))
			goto fail;
		c.oneway = json_object_get_boolean(b);
	}
	field = "more";
	if (json_object_object_get_ex(o, "more", &b) && b) {
		if (!json_object_is_type(b, json_type_boolean))
			goto fail;
		c.more = json_object_get_boolean(b);
	}
	field = "upgrade";
	if (json_object_object_get_ex(o, "upgrade", &b) && b) {
		if (!json_object_is_type(b, json_type_boolean))
			goto fail;
		/* Connection upgrades are not supported by anything this server offers. */
		if (json_object_get_boolean(b))
			goto fail;
	}

	c.method = strdup(json_object_get_string(m));
	if (!c.method) {
		r = -ENOMEM;
		goto fail;
	}

	json_object_put(o);
	*ret = c;
	if (ret_field)
		*ret_field = NULL;
	return 0;

fail:
	json_object_put(c.parameters);
	json_object_put(o);
	if (ret_field)
		*ret_field = field;
	return r;
}

int varlink_call_parse(const char *text, VarlinkCall *ret)
{
	if (!text || !ret)
		return -EINVAL;
	return call_parse(text, ret, NULL);
}

void varlink_call_done(VarlinkCall *c)
{
	if (!c)
		return;
	free(c->method);
	json_object_put(c->parameters);
	*c = (VarlinkCall) {};
}

/*
 * Serialize one message and append its NUL. Ownership of nothing changes. -EMSGSIZE
 * when the result would exceed the message limit: the peer would refuse it anyway.
 */
static int message_serialize(json_object *msg, char **ret, size_t *ret_len)
{
	const char *s;
	size_t l;
	char *b;

	s = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s)
		return -ENOMEM;
	l = strlen(s);
	if (l + 1 > VARLINK_MESSAGE_MAX)
		return -EMSGSIZE;
	b = malloc(l + 1);
	if (!b)
		return -ENOMEM;
	memcpy(b, s, l + 1);
	*ret = b;
	*ret_len = l + 1;
	return 0;
}

static bool method_name_split(const char *method, size_t *ret_iface_len)
{
	const char *dot = strrchr(method, '.');

	if (!dot || dot == method || dot[1] == '\0')
		return false;
	*ret_iface_len = dot - method;
	return true;
}

/* -------------------------------------------------------------------- server */

struct VarlinkServer {
	sd_event *event;
	VarlinkServerInfo info;
	const VarlinkInterface *interfaces;
	const VarlinkMethod *methods;
	void *userdata;

	struct Listener {
		int fd;
		sd_event_source *source;
	} *listeners;
	size_t n_listeners;

	VarlinkConnection *connections;
	unsigned n_connections;
	unsigned connections_max;
	unsigned connections_per_uid_max;
	uint64_t idle_timeout_usec;
	uint64_t n_refused;
	/* Out of file descriptors: stop accepting until a connection closes. */
	bool accept_paused;
};

struct VarlinkConnection {
	unsigned n_ref;
	VarlinkServer *server;     /* NULL once disconnected */
	VarlinkConnection *next, *prev;

	int fd;
	sd_event_source *io;
	sd_event_source *defer;    /* resumes dispatching after an asynchronous reply */
	sd_event_source *idle;

	struct ucred peer;
	bool have_peer;

	VarlinkFrame in;
	bool read_eof;

	char *out;
	size_t out_len, out_start, out_alloc;

	/* A call was dispatched and has not been answered yet. */
	bool call_pending;
	bool call_oneway;
	bool call_more;            /* the pending call asked for "continues" replies */
	/* Close once the output is flushed. */
	bool close_after_flush;
	/* Inside connection_process(): no need to schedule it. */
	bool processing;
};

static void connection_disconnect(VarlinkConnection *c);
static int connection_update_events(VarlinkConnection *c);
static void connection_process(VarlinkConnection *c);

static VarlinkConnection *connection_free(VarlinkConnection *c)
{
	varlink_frame_done(&c->in);
	free(c->out);
	free(c);
	return NULL;
}

VarlinkConnection *varlink_connection_ref(VarlinkConnection *c)
{
	if (c)
		c->n_ref++;
	return c;
}

VarlinkConnection *varlink_connection_unref(VarlinkConnection *c)
{
	if (!c)
		return NULL;
	if (--c->n_ref > 0)
		return NULL;
	connection_disconnect(c);
	return connection_free(c);
}

static void connection_disconnect(VarlinkConnection *c)
{
	VarlinkServer *s = c->server;

	c->io = sd_event_source_disable_unref(c->io);
	c->defer = sd_event_source_disable_unref(c->defer);
	c->idle = sd_event_source_disable_unref(c->idle);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -EBADF;
	}
	varlink_frame_done(&c->in);
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_start = c->out_alloc = 0;

	if (!s)
		return;
	c->server = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->connections = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	s->n_connections--;
	if (s->accept_paused) {
		for (size_t i = 0; i < s->n_listeners; i++)
			(void) sd_event_source_set_enabled(s->listeners[i].source, SD_EVENT_ON);
		s->accept_paused = false;
	}

	/* The server's reference: last, it may free c. */
	varlink_connection_unref(c);
}

static int connection_queue(VarlinkConnection *c, const char *data, size_t n)
{
	if (c->out_start > 0 && c->out_start == c->out_len)
		c->out_start = c->out_len = 0;

	if (n > c->out_alloc - c->out_len) {
		size_t need, a;
		char *b;

		/* Compact first: the consumed prefix may be all that is needed. */
		if (c->out_start > 0) {
			memmove(c->out, c->out + c->out_start, c->out_len - c->out_start);
			c->out_len -= c->out_start;
			c->out_start = 0;
		}
		need = c->out_len + n;
		if (need > c->out_alloc) {
			a = c->out_alloc > 0 ? c->out_alloc : 4096;
			while (a < need)
				a *= 2;
			b = realloc(c->out, a);
			if (!b)
				return -ENOMEM;
			c->out = b;
			c->out_alloc = a;
		}
	}
	memcpy(c->out + c->out_len, data, n);
	c->out_len += n;
	return 0;
}

/* Write what the socket takes now. 0 when done or would block, negative errno when dead. */
static int connection_flush(VarlinkConnection *c)
{
	while (c->out_start < c->out_len) {
		ssize_t k = send(c->fd, c->out + c->out_start, c->out_len - c->out_start,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		c->out_start += k;
	}
	c->out_start = c->out_len = 0;
	if (c->out_alloc > VARLINK_FRAME_KEEP) {
		free(c->out);
		c->out = NULL;
		c->out_alloc = 0;
	}
	return 0;
}

static size_t connection_output_pending(const VarlinkConnection *c)
{
	return c->out_len - c->out_start;
}

/* A call holds a reference on its connection until it is answered (varlink.h). */
static void connection_call_begin(VarlinkConnection *c, bool oneway, bool more)
{
	c->call_pending = true;
	c->call_oneway = oneway;
	c->call_more = more && !oneway;
	varlink_connection_ref(c);
}

/* The call is answered: resume dispatching and drop the call's reference (may free c). */
static void connection_call_end(VarlinkConnection *c)
{
	c->call_pending = false;
	/* Messages buffered behind an asynchronous call are handled from the loop. */
	if (c->server && !c->processing)
		(void) sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
	varlink_connection_unref(c);
}

static int connection_send(VarlinkConnection *c, json_object *msg)
{
	char *text;
	size_t n;
	int r;

	r = message_serialize(msg, &text, &n);
	if (r < 0)
		return r;
	r = connection_queue(c, text, n);
	free(text);
	if (r < 0)
		return r;

	r = connection_flush(c);
	if (r < 0) {
		/* EPIPE, ECONNRESET: the peer is gone; the reply is moot. */
		connection_disconnect(c);
		return 0;
	}
	return connection_update_events(c);
}

static int connection_idle_handler(sd_event_source *source, uint64_t usec, void *userdata)
{
	VarlinkConnection *c = userdata;

	/* No complete call within the idle timeout: a stalled or forgotten client. */
	connection_disconnect(c);
	return 0;
}

/*
 * Idle is measured from the last dispatched call, not the last byte, so trickling a
 * message one byte at a time does not keep a connection alive. A pending call is not
 * idle. reset: a call was dispatched, restart the timer.
 */
static int connection_arm_idle(VarlinkConnection *c, bool reset)
{
	VarlinkServer *s = c->server;
	int enabled, r;

	if (!s || s->idle_timeout_usec == 0)
		return 0;

	if (c->call_pending) {
		if (c->idle)
			return sd_event_source_set_enabled(c->idle, SD_EVENT_OFF);
		return 0;
	}

	if (!c->idle) {
		r = sd_event_add_time_relative(s->event, &c->idle, CLOCK_MONOTONIC,
					       s->idle_timeout_usec, 0, connection_idle_handler, c);
		if (r < 0)
			return r;
		(void) sd_event_source_set_description(c->idle, "varlink-connection-idle");
		return 0;
	}
	r = sd_event_source_get_enabled(c->idle, &enabled);
	if (r < 0)
		return r;
	if (!reset && enabled != SD_EVENT_OFF)
		return 0;
	r = sd_event_source_set_time_relative(c->idle, s->idle_timeout_usec);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(c->idle, SD_EVENT_ONESHOT);
}

/*
 * Read only when the next message may be dispatched: no call pending, output drained
 * below the high mark, no complete message already waiting, and not at EOF.
 */
static bool connection_wants_read(const VarlinkConnection *c)
{
	return !c->read_eof && !c->call_pending && !c->close_after_flush &&
	       connection_output_pending(c) < VARLINK_OUTPUT_HIGH &&
	       varlink_frame_pending(&c->in) <= c->in.tail;
}

static int connection_update_events(VarlinkConnection *c)
{
	uint32_t events = 0;

	if (!c->io)
		return 0;
	if (connection_wants_read(c))
		events |= EPOLLIN;
	if (connection_output_pending(c) > 0)
		events |= EPOLLOUT;
	return sd_event_source_set_io_events(c->io, events);
}

static int reply_error_simple(VarlinkConnection *c, const char *error, const char *key, const char *value)
{
	json_object *p = json_object_new_object();

	if (!p)
		return -ENOMEM;
	if (key && json_object_object_add(p, key, json_object_new_string(value)) < 0) {
		json_object_put(p);
		return -ENOMEM;
	}
	return varlink_reply_error(c, error, p);
}

static int builtin_get_info(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	VarlinkServer *s = c->server;
	json_object *p, *ifaces;

	json_object_object_foreach(parameters, key, val) {
		(void) val;
		/* GetInfo takes no parameters: name the first one. */
		return varlink_reply_invalid_parameter(c, key);
	}

	p = json_object_new_object();
	ifaces = json_object_new_array();
	if (!p || !ifaces) {
		json_object_put(p);
		json_object_put(ifaces);
		return -ENOMEM;
	}
	json_object_object_add(p, "vendor", json_object_new_string(s->info.vendor ?: ""));
	json_object_object_add(p, "product", json_object_new_string(s->info.product ?: ""));
	json_object_object_add(p, "version", json_object_new_string(s->info.version ?: ""));
	json_object_object_add(p, "url", json_object_new_string(s->info.url ?: ""));
	json_object_array_add(ifaces, json_object_new_string("org.varlink.service"));
	for (const VarlinkInterface *i = s->interfaces; i && i->name; i++)
		json_object_array_add(ifaces, json_object_new_string(i->name));
	json_object_object_add(p, "interfaces", ifaces);
	return varlink_reply(c, p);
}

static int builtin_get_interface_description(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	VarlinkServer *s = c->server;
	const char *name, *description = NULL;
	json_object *v, *p;

	if (!json_object_object_get_ex(parameters, "interface", &v) ||
	    !json_object_is_type(v, json_type_string) || json_object_object_length(parameters) != 1)
		return varlink_reply_invalid_parameter(c, "interface");
	name = json_object_get_string(v);

	if (strcmp(name, "org.varlink.service") == 0)
		description = interface_org_varlink_service;
	for (const VarlinkInterface *i = s->interfaces; !description && i && i->name; i++)
		if (strcmp(i->name, name) == 0)
			description = i->description ?: "";
	if (!description)
		return reply_error_simple(c, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", name);

	p = json_object_new_object();
	if (!p)
		return -ENOMEM;
	json_object_object_add(p, "description", json_object_new_string(description));
	return varlink_reply(c, p);
}

static const VarlinkMethod builtin_methods[] = {
	{ "org.varlink.service.GetInfo", builtin_get_info },
	{ "org.varlink.service.GetInterfaceDescription", builtin_get_interface_description },
	{}
};

static bool server_has_interface(VarlinkServer *s, const char *name, size_t len)
{
	if (len == strlen("org.varlink.service") && strncmp(name, "org.varlink.service", len) == 0)
		return true;
	for (const VarlinkInterface *i = s->interfaces; i && i->name; i++)
		if (strlen(i->name) == len && strncmp(i->name, name, len) == 0)
			return true;
	return false;
}

static VarlinkMethodFn server_find_method(VarlinkServer *s, const char *name)
{
	for (const VarlinkMethod *m = builtin_methods; m->name; m++)
		if (strcmp(m->name, name) == 0)
			return m->fn;
	for (const VarlinkMethod *m = s->methods; m && m->name; m++)
		if (strcmp(m->name, name) == 0)
			return m->fn;
	return NULL;
}

/* Handle one complete message. Negative errno means: close the connection. */
static int connection_dispatch(VarlinkConnection *c, const char *text)
{
	VarlinkServer *s = c->server;
	VarlinkCall call = {};
	const char *field;
	VarlinkMethodFn fn;
	size_t iface_len;
	char *iface;
	int r;

	r = call_parse(text, &call, &field);
	if (r == -EBADMSG) {
		/* The framing is intact, so the connection stays usable: say what is wrong. */
		connection_call_begin(c, false, false);
		return varlink_reply_invalid_parameter(c, field);
	}
	if (r < 0)
		return r;

	connection_call_begin(c, call.oneway, call.more);

	fn = server_find_method(s, call.method);
	if (!fn) {
		if (!method_name_split(call.method, &iface_len) ||
		    server_has_interface(s, call.method, iface_len)) {
			r = reply_error_simple(c, VARLINK_ERROR_METHOD_NOT_FOUND, "method", call.method);
		} else {
			iface = strndup(call.method, iface_len);
			r = iface ? reply_error_simple(c, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", iface)
				  : -ENOMEM;
			free(iface);
		}
		varlink_call_done(&call);
		return r;
	}

	r = fn(c, call.parameters, s->userdata);
	varlink_call_done(&call);
	if (r < 0 && c->call_pending) {
		if (r == -EINVAL && c->server)
			return varlink_reply_invalid_parameter(c, "parameters");
		connection_call_end(c);
		return r;
	}
	/* r >= 0 and still pending: the handler answers later. */
	return 0;
}

static void connection_process(VarlinkConnection *c)
{
	bool dispatched = false;
	int r;

	varlink_connection_ref(c);
	c->processing = true;

	while (c->server && !c->call_pending && connection_output_pending(c) < VARLINK_OUTPUT_HIGH) {
		char *msg;

		r = varlink_frame_next(&c->in, &msg);
		if (r < 0) {
			connection_disconnect(c);
			break;
		}
		if (r == 0)
			break;

		dispatched = true;
		r = connection_dispatch(c, msg);
		free(msg);
		if (r < 0) {
			connection_disconnect(c);
			break;
		}
	}

	if (c->server) {
		/* EOF: answer what was complete, then close. An unterminated tail is dropped. */
		if (c->read_eof && !c->call_pending && varlink_frame_pending(&c->in) <= c->in.tail)
			c->close_after_flush = true;
		if (c->close_after_flush && connection_output_pending(c) == 0)
			connection_disconnect(c);
	}
	if (c->server) {
		if (connection_update_events(c) < 0 || connection_arm_idle(c, dispatched) < 0)
			connection_disconnect(c);
	}

	c->processing = false;
	varlink_connection_unref(c);
}

static int connection_io_handler(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	VarlinkConnection *c = userdata;
	char buf[VARLINK_READ_CHUNK];
	int r;

	varlink_connection_ref(c);

	if (revents & EPOLLOUT) {
		r = connection_flush(c);
		if (r < 0) {
			connection_disconnect(c);
			goto finish;
		}
	}

	if ((revents & EPOLLIN) && connection_wants_read(c)) {
		ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (k < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				connection_disconnect(c);
				goto finish;
			}
		} else if (k == 0) {
			c->read_eof = true;
		} else {
			r = varlink_frame_feed(&c->in, buf, k);
			if (r < 0) {
				/* Oversized: resynchronizing is impossible; drop the peer. */
				connection_disconnect(c);
				goto finish;
			}
		}
	} else if (revents & (EPOLLHUP | EPOLLERR)) {
		/*
		 * Nothing more can be written to or read from the peer. Without this, a
		 * level-triggered HUP would spin while a call is pending.
		 */
		if (!(revents & EPOLLIN) || !connection_wants_read(c)) {
			connection_disconnect(c);
			goto finish;
		}
	}

	connection_process(c);

finish:
	varlink_connection_unref(c);
	return 0;
}

static int connection_defer_handler(sd_event_source *source, void *userdata)
{
	VarlinkConnection *c = userdata;

	connection_process(c);
	return 0;
}

static unsigned server_connections_of_uid(VarlinkServer *s, uid_t uid)
{
	unsigned n = 0;

	for (VarlinkConnection *c = s->connections; c; c = c->next)
		if (c->have_peer && c->peer.uid == uid)
			n++;
	return n;
}

int varlink_server_add_connection(VarlinkServer *s, int fd, VarlinkConnection **ret)
{
	VarlinkConnection *c;
	socklen_t sl;
	int r, flags;

	if (!s || fd < 0)
		return -EINVAL;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->n_ref = 1; /* the server's */
	c->fd = fd;
	varlink_frame_init(&c->in, VARLINK_MESSAGE_MAX);

	sl = sizeof(c->peer);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->peer, &sl) == 0 && sl == sizeof(c->peer))
		c->have_peer = true;

	if (s->n_connections >= s->connections_max ||
	    (c->have_peer && c->peer.uid != 0 && s->connections_per_uid_max > 0 &&
	     server_connections_of_uid(s, c->peer.uid) >= s->connections_per_uid_max)) {
		/* The caller hands us the fd either way; refusing closes it. */
		s->n_refused++;
		c->fd = -EBADF;
		close(fd);
		connection_free(c);
		return -EBUSY;
	}

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}

	r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, connection_io_handler, c);
	if (r < 0)
		goto fail;
	(void) sd_event_source_set_description(c->io, "varlink-connection");

	r = sd_event_add_defer(s->event, &c->defer, connection_defer_handler, c);
	if (r < 0)
		goto fail;
	(void) sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
	(void) sd_event_source_set_description(c->defer, "varlink-connection-resume");

	c->server = s;
	c->next = s->connections;
	if (c->next)
		c->next->prev = c;
	s->connections = c;
	s->n_connections++;

	r = connection_arm_idle(c, true);
	if (r < 0) {
		connection_disconnect(c);
		return r;
	}

	if (ret)
		*ret = c;
	return 0;

fail:
	c->io = sd_event_source_disable_unref(c->io);
	c->defer = sd_event_source_disable_unref(c->defer);
	close(fd);
	c->fd = -EBADF;
	connection_free(c);
	return r;
}

static int listener_handler(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
	VarlinkServer *s = userdata;
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0) {
		/*
		 * Out of fds or memory: the pending connection stays in the backlog and the
		 * level-triggered listener would fire again at once. Pause accepting until a
		 * connection closes, or until the next connection arrives when none is open.
		 */
		if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
		    s->n_connections > 0) {
			for (size_t i = 0; i < s->n_listeners; i++)
				(void) sd_event_source_set_enabled(s->listeners[i].source, SD_EVENT_OFF);
			s->accept_paused = true;
		}
		/* EAGAIN (another accept won), ECONNABORTED: nothing to do now. */
		return 0;
	}

	/* Refused (connection limit) or failed: the fd is closed, the peer sees EOF. */
	(void) varlink_server_add_connection(s, cfd, NULL);
	return 0;
}

int varlink_server_new(sd_event *event, const VarlinkServerInfo *info,
		       const VarlinkInterface *interfaces, const VarlinkMethod *methods,
		       void *userdata, VarlinkServer **ret)
{
	VarlinkServer *s;

	if (!event || !ret)
		return -EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->event = sd_event_ref(event);
	if (info)
		s->info = *info;
	s->interfaces = interfaces;
	s->methods = methods;
	s->userdata = userdata;
	s->connections_max = VARLINK_CONNECTIONS_MAX;
	s->connections_per_uid_max = VARLINK_CONNECTIONS_PER_UID_MAX;
	s->idle_timeout_usec = VARLINK_IDLE_TIMEOUT_USEC;

	*ret = s;
	return 0;
}

int varlink_server_set_connections_max(VarlinkServer *s, unsigned max, unsigned per_uid_max)
{
	if (!s || max == 0)
		return -EINVAL;
	s->connections_max = max;
	s->connections_per_uid_max = per_uid_max;
	return 0;
}

int varlink_server_set_idle_timeout(VarlinkServer *s, uint64_t usec)
{
	if (!s)
		return -EINVAL;
	s->idle_timeout_usec = usec;
	/* Applies to connections as they are next armed. */
	return 0;
}

uint64_t varlink_server_n_refused(VarlinkServer *s)
{
	return s ? s->n_refused : 0;
}

int varlink_server_listen_fd(VarlinkServer *s, int fd)
{
	struct Listener *l;
	int r, flags;

	if (!s || fd < 0)
		return -EINVAL;

	l = realloc(s->listeners, (s->n_listeners + 1) * sizeof(*l));
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	s->listeners = l;
	l = &s->listeners[s->n_listeners];
	*l = (struct Listener) { .fd = fd };

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		r = -errno;
		close(fd);
		return r;
	}

	r = sd_event_add_io(s->event, &l->source, fd, EPOLLIN, listener_handler, s);
	if (r < 0) {
		close(fd);
		return r;
	}
	(void) sd_event_source_set_description(l->source, "varlink-listen");
	s->n_listeners++;
	return 0;
}

static int sockaddr_un_set(struct sockaddr_un *sa, socklen_t *ret_len, const char *path)
{
	size_t l;

	if (!path || path[0] == '\0')
		return -EINVAL;
	l = strlen(path);
	if (l >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	*sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
	memcpy(sa->sun_path, path, l + 1);
	*ret_len = offsetof(struct sockaddr_un, sun_path) + l + 1;
	return 0;
}

int varlink_server_listen_address(VarlinkServer *s, const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	socklen_t sl;
	int fd, r;

	if (!s)
		return -EINVAL;
	r = sockaddr_un_set(&sa, &sl, path);
	if (r < 0)
		return r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;

	/* Replace a stale socket left by a previous instance, never any other file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return -EEXIST;
		}
		(void) unlink(path);
	}

	/* mode 0666: access control is SO_PEERCRED per call, not the file mode. */
	{
		mode_t old = umask(0111);

		r = bind(fd, (struct sockaddr *) &sa, sl);
		umask(old);
	}
	if (r < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		close(fd);
		return r;
	}

	return varlink_server_listen_fd(s, fd);
}

unsigned varlink_server_n_connections(VarlinkServer *s)
{
	return s ? s->n_connections : 0;
}

VarlinkServer *varlink_server_free(VarlinkServer *s)
{
	if (!s)
		return NULL;

	while (s->connections)
		connection_disconnect(s->connections);

	for (size_t i = 0; i < s->n_listeners; i++) {
		sd_event_source_disable_unref(s->listeners[i].source);
		close(s->listeners[i].fd);
	}
	free(s->listeners);
	sd_event_unref(s->event);
	free(s);
	return NULL;
}


static int connection_reply(VarlinkConnection *c, const char *error, json_object *parameters)
{
	json_object *msg = NULL;
	int r;

	if (!c) {
		json_object_put(parameters);
		return -EINVAL;
	}
	if (!c->call_pending) {
		json_object_put(parameters);
		return -EBADE;  /* no call to answer, or answered twice */
	}
	if (parameters && !json_object_is_type(parameters, json_type_object)) {
		json_object_put(parameters);
		return -EINVAL;
	}
	if (!c->server) {
		/* The peer left while the reply was prepared. */
		json_object_put(parameters);
		connection_call_end(c);
		return -ENOTCONN;
	}

	if (c->call_oneway) {
		json_object_put(parameters);
		connection_call_end(c);
		return 0;
	}

	msg = json_object_new_object();
	if (!msg) {
		json_object_put(parameters);
		return -ENOMEM;
	}
	if (error)
		json_object_object_add(msg, "error", json_object_new_string(error));
	json_object_object_add(msg, "parameters", parameters ?: json_object_new_object());

	r = connection_send(c, msg);
	json_object_put(msg);
	if (r < 0)
		return r;  /* still pending: the handler may answer with an error instead */
	connection_call_end(c);
	return 0;
}

int varlink_reply(VarlinkConnection *c, json_object *parameters)
{
	return connection_reply(c, NULL, parameters);
}

int varlink_reply_error(VarlinkConnection *c, const char *error, json_object *parameters)
{
	if (!error || error[0] == '\0') {
		json_object_put(parameters);
		return -EINVAL;
	}
	return connection_reply(c, error, parameters);
}

bool varlink_connection_wants_more(VarlinkConnection *c)
{
	return c && c->call_pending && c->call_more;
}

int varlink_reply_continues(VarlinkConnection *c, json_object *parameters)
{
	json_object *msg;
	int r;

	if (!c || (parameters && !json_object_is_type(parameters, json_type_object))) {
		json_object_put(parameters);
		return -EINVAL;
	}
	if (!c->call_pending) {
		json_object_put(parameters);
		return -EBADE;
	}
	if (!c->call_more) {
		/* Not asked for (or oneway): only the final reply counts. */
		json_object_put(parameters);
		return 0;
	}
	if (!c->server) {
		/* The call stays pending: its final reply releases it. */
		json_object_put(parameters);
		return -ENOTCONN;
	}
	if (connection_output_pending(c) >= VARLINK_OUTPUT_HIGH) {
		/* The peer does not read: drop progress rather than buffer without bound. */
		json_object_put(parameters);
		return -EAGAIN;
	}

	msg = json_object_new_object();
	if (!msg) {
		json_object_put(parameters);
		return -ENOMEM;
	}
	json_object_object_add(msg, "parameters", parameters ?: json_object_new_object());
	json_object_object_add(msg, "continues", json_object_new_boolean(true));
	r = connection_send(c, msg);
	json_object_put(msg);
	return r;
}

int varlink_reply_invalid_parameter(VarlinkConnection *c, const char *name)
{
	return reply_error_simple(c, VARLINK_ERROR_INVALID_PARAMETER, "parameter", name ?: "");
}

int varlink_connection_get_peer(VarlinkConnection *c, pid_t *ret_pid, uid_t *ret_uid, gid_t *ret_gid)
{
	if (!c)
		return -EINVAL;
	if (!c->have_peer)
		return -ENODATA;
	if (ret_pid)
		*ret_pid = c->peer.pid;
	if (ret_uid)
		*ret_uid = c->peer.uid;
	if (ret_gid)
		*ret_gid = c->peer.gid;
	return 0;
}

/* -------------------------------------------------------------------- client */

struct VarlinkClient {
	int fd;
	VarlinkFrame in;
};

int varlink_client_connect(const char *path, VarlinkClient **ret)
{
	struct sockaddr_un sa;
	VarlinkClient *c;
	socklen_t sl;
	int fd, r;

	if (!ret)
		return -EINVAL;
	r = sockaddr_un_set(&sa, &sl, path);
	if (r < 0)
		return r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Blocking connect on AF_UNIX does not wait for accept(), only for backlog space. */
	if (connect(fd, (struct sockaddr *) &sa, sl) < 0) {
		r = -errno;
		close(fd);
		return r;
	}

	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	varlink_frame_init(&c->in, VARLINK_MESSAGE_MAX);
	*ret = c;
	return 0;
}

VarlinkClient *varlink_client_free(VarlinkClient *c)
{
	if (!c)
		return NULL;
	if (c->fd >= 0)
		close(c->fd);
	varlink_frame_done(&c->in);
	free(c);
	return NULL;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

/* Wait for events on the client socket until deadline (0: forever). */
static int client_wait(VarlinkClient *c, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = c->fd, .events = events };
		int timeout = -1, k;

		if (deadline > 0) {
			uint64_t n = now_usec();

			if (n >= deadline)
				return -ETIMEDOUT;
			timeout = (int) ((deadline - n + 999) / 1000 > INT32_MAX ? INT32_MAX
										  : (deadline - n + 999) / 1000);
		}
		k = poll(&p, 1, timeout);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			continue;  /* re-check the deadline */
		return 0;
	}
}

static int client_send(VarlinkClient *c, const char *method, json_object *parameters, bool oneway,
		       bool more, uint64_t timeout_usec);

int varlink_client_send(VarlinkClient *c, const char *method, json_object *parameters, bool oneway,
			uint64_t timeout_usec)
{
	return client_send(c, method, parameters, oneway, false, timeout_usec);
}

int varlink_client_send_ext(VarlinkClient *c, const char *method, json_object *parameters,
			    bool more, uint64_t timeout_usec)
{
	return client_send(c, method, parameters, false, more, timeout_usec);
}

static int client_send(VarlinkClient *c, const char *method, json_object *parameters, bool oneway,
		       bool more, uint64_t timeout_usec)
{
	json_object *msg;
	uint64_t deadline = timeout_usec > 0 ? now_usec() + timeout_usec : 0;
	size_t n, off = 0;
	char *text;
	int r;

	if (!c || !method || (parameters && !json_object_is_type(parameters, json_type_object)))
		return -EINVAL;

	msg = json_object_new_object();
	if (!msg)
		return -ENOMEM;
	json_object_object_add(msg, "method", json_object_new_string(method));
	json_object_object_add(msg, "parameters",
			       parameters ? json_object_get(parameters) : json_object_new_object());
	if (oneway)
		json_object_object_add(msg, "oneway", json_object_new_boolean(true));
	if (more)
		json_object_object_add(msg, "more", json_object_new_boolean(true));
	r = message_serialize(msg, &text, &n);
	json_object_put(msg);
	if (r < 0)
		return r;

	while (off < n) {
		ssize_t k = send(c->fd, text + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				r = client_wait(c, POLLOUT, deadline);
				if (r < 0)
					break;
				continue;
			}
			r = -errno;
			break;
		}
		off += k;
	}
	free(text);
	return off == n ? 0 : r;
}

int varlink_client_receive(VarlinkClient *c, uint64_t timeout_usec, json_object **ret_parameters,
			   char **ret_error)
{
	return varlink_client_receive_ext(c, timeout_usec, ret_parameters, ret_error, NULL);
}

int varlink_client_receive_ext(VarlinkClient *c, uint64_t timeout_usec,
			       json_object **ret_parameters, char **ret_error, bool *ret_continues)
{
	bool continues = false;
	uint64_t deadline = timeout_usec > 0 ? now_usec() + timeout_usec : 0;
	json_object *o = NULL, *p, *e;
	char *msg = NULL, *err = NULL;
	int r;

	if (!c || !ret_parameters || !ret_error)
		return -EINVAL;

	for (;;) {
		char buf[VARLINK_READ_CHUNK];
		ssize_t k;

		r = varlink_frame_next(&c->in, &msg);
		if (r < 0)
			return r;
		if (r > 0)
			break;

		r = client_wait(c, POLLIN, deadline);
		if (r < 0)
			return r;
		k = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -errno;
		}
		if (k == 0)
			return -ECONNRESET;  /* closed before a complete reply */
		r = varlink_frame_feed(&c->in, buf, k);
		if (r < 0)
			return r;
	}

	r = json_parse_strict(msg, &o);
	free(msg);
	if (r < 0)
		return r;
	r = -EBADMSG;
	if (!json_object_is_type(o, json_type_object))
		goto fail;

	if (json_object_object_get_ex(o, "error", &e) && e) {
		if (!json_object_is_type(e, json_type_string) || json_object_get_string_len(e) == 0)
			goto fail;
		err = strdup(json_object_get_string(e));
		if (!err) {
			r = -ENOMEM;
			goto fail;
		}
	}

	if (json_object_object_get_ex(o, "continues", &e) && e) {
		if (!json_object_is_type(e, json_type_boolean))
			goto fail;
		/* An error ends the call, whatever it says. */
		continues = json_object_get_boolean(e) && !err;
	}

	if (json_object_object_get_ex(o, "parameters", &p) && p) {
		if (!json_object_is_type(p, json_type_object))
			goto fail;
		p = json_object_get(p);
	} else {
		p = json_object_new_object();
		if (!p) {
			r = -ENOMEM;
			goto fail;
		}
	}

	json_object_put(o);
	*ret_parameters = p;
	*ret_error = err;
	if (ret_continues)
		*ret_continues = continues;
	return 0;

fail:
	free(err);
	json_object_put(o);
	return r;
}

int varlink_client_call(VarlinkClient *c, const char *method, json_object *parameters,
			uint64_t timeout_usec, json_object **ret_parameters, char **ret_error)
{
	uint64_t start = now_usec(), spent;
	int r;

	if (!ret_parameters || !ret_error)
		return -EINVAL;

	r = varlink_client_send(c, method, parameters, false, timeout_usec);
	if (r < 0)
		return r;

	if (timeout_usec > 0) {
		spent = now_usec() - start;
		if (spent >= timeout_usec)
			return -ETIMEDOUT;
		timeout_usec -= spent;
	}
	return varlink_client_receive(c, timeout_usec, ret_parameters, ret_error);
}
