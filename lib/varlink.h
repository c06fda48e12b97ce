/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Varlink over AF_UNIX stream sockets: NUL-terminated JSON messages.
 * https://varlink.org/ — a call is {"method": "iface.Method", "parameters": {...},
 * "oneway"?: bool, "more"?: bool}; a reply is {"parameters": {...}} or
 * {"error": "iface.ErrorName", "parameters": {...}}.
 *
 * The framing (varlink_frame_*) is pure and fed bytes in unit tests and the
 * fuzzer. The server side plugs into an sd-event loop; the client side is
 * blocking and used by cohctl.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

/* Largest message either side accepts, NUL included. Larger input closes the connection. */
#define VARLINK_MESSAGE_MAX (1U << 20)

#define VARLINK_ERROR_METHOD_NOT_FOUND     "org.varlink.service.MethodNotFound"
#define VARLINK_ERROR_INTERFACE_NOT_FOUND  "org.varlink.service.InterfaceNotFound"
#define VARLINK_ERROR_INVALID_PARAMETER    "org.varlink.service.InvalidParameter"
#define VARLINK_ERROR_PERMISSION_DENIED    "org.varlink.service.PermissionDenied"
#define VARLINK_ERROR_EXPECTED_MORE        "org.varlink.service.ExpectedMore"

/* ---- framing: accumulate bytes, split on NUL ---- */

typedef struct VarlinkFrame {
	char *buf;
	size_t len;       /* bytes held */
	size_t alloc;
	size_t max;       /* message size limit, NUL included */
	size_t start;     /* bytes at the front already taken by varlink_frame_next() */
	size_t tail;      /* length of the unterminated message at the end */
} VarlinkFrame;

void varlink_frame_init(VarlinkFrame *f, size_t max);
void varlink_frame_done(VarlinkFrame *f);
/* Append bytes; -EMSGSIZE when a message without NUL grows past max. */
int varlink_frame_feed(VarlinkFrame *f, const void *data, size_t n);
/*
 * Take the next complete message: returns 1 and *ret_msg (malloc'd, NUL-terminated,
 * caller frees), 0 when no complete message is buffered.
 */
int varlink_frame_next(VarlinkFrame *f, char **ret_msg);
/* Bytes buffered and not yet taken (complete messages plus the unterminated tail). */
size_t varlink_frame_pending(const VarlinkFrame *f);

/*
 * Parse one message text into a call: method name and parameters (an object;
 * absent parameters become an empty object). -EBADMSG for anything that is not
 * an object with a string "method", or whose "parameters" is not an object.
 */
typedef struct VarlinkCall {
	char *method;
	json_object *parameters; /* owned */
	bool oneway;
	bool more;
} VarlinkCall;

int varlink_call_parse(const char *text, VarlinkCall *ret);
void varlink_call_done(VarlinkCall *c);

/* ---- server ---- */

/*
 * Defaults; see varlink_server_set_connections_max() and _set_idle_timeout().
 * Connections beyond a limit are accepted and closed at once (the peer sees EOF).
 * The per-UID limit does not apply to root. A connection that has not completed a
 * call within the idle timeout (and is not waiting for a reply) is closed.
 */
#define VARLINK_CONNECTIONS_MAX          256U
#define VARLINK_CONNECTIONS_PER_UID_MAX  128U
#define VARLINK_IDLE_TIMEOUT_USEC        (60ULL * 1000000ULL)

typedef struct VarlinkServer VarlinkServer;
typedef struct VarlinkConnection VarlinkConnection;

/*
 * A method handler answers exactly once, now or later (the connection is
 * referenced until it does), with varlink_reply() or varlink_reply_error().
 * Returning a negative errno without having replied sends
 * org.varlink.service.InvalidParameter for -EINVAL and closes the connection
 * for anything else.
 */
typedef int (*VarlinkMethodFn)(VarlinkConnection *c, json_object *parameters, void *userdata);

typedef struct VarlinkMethod {
	const char *name;  /* fully qualified, e.g. "io.coherentd.GetStatus" */
	VarlinkMethodFn fn;
} VarlinkMethod;

typedef struct VarlinkInterface {
	const char *name;         /* "io.coherentd" */
	const char *description;  /* IDL text served by GetInterfaceDescription */
} VarlinkInterface;

typedef struct VarlinkServerInfo {
	const char *vendor, *product, *version, *url;
} VarlinkServerInfo;

/*
 * methods and interfaces are NULL-name-terminated arrays that must outlive the
 * server. org.varlink.service.GetInfo and GetInterfaceDescription are built in.
 */
int varlink_server_new(sd_event *event, const VarlinkServerInfo *info,
		       const VarlinkInterface *interfaces, const VarlinkMethod *methods,
		       void *userdata, VarlinkServer **ret);
/* Listen on an already bound+listening fd (socket activation); takes ownership. */
int varlink_server_listen_fd(VarlinkServer *s, int fd);
/* Create, bind (unlinking a stale socket) and listen on path, mode 0666. */
int varlink_server_listen_address(VarlinkServer *s, const char *path);
unsigned varlink_server_n_connections(VarlinkServer *s);
/* per_uid_max 0: no per-UID limit. */
int varlink_server_set_connections_max(VarlinkServer *s, unsigned max, unsigned per_uid_max);
/* 0 disables the idle timeout. */
int varlink_server_set_idle_timeout(VarlinkServer *s, uint64_t usec);
/* Connections refused because of the limits since the server was created. */
uint64_t varlink_server_n_refused(VarlinkServer *s);
/*
 * Serve an already connected socket (tests, fuzzing, Accept=yes activation); takes
 * ownership of fd even on failure. -EBUSY when a connection limit refused it.
 * *ret (optional) is borrowed: the server owns the connection.
 */
int varlink_server_add_connection(VarlinkServer *s, int fd, VarlinkConnection **ret);
VarlinkServer *varlink_server_free(VarlinkServer *s);

/* Replies take ownership of parameters (may be NULL for an empty object). */
int varlink_reply(VarlinkConnection *c, json_object *parameters);
int varlink_reply_error(VarlinkConnection *c, const char *error, json_object *parameters);
/*
 * "more" calls (varlink's streaming replies): true when the pending call on c
 * asked for more replies. varlink_reply_continues() sends a reply with
 * "continues": true and keeps the call pending; the call still ends with one
 * varlink_reply() or varlink_reply_error(). When the caller did not ask for
 * more (or the call is oneway) it sends nothing and returns 0; when the peer
 * does not read its replies it drops this one and returns -EAGAIN (the final
 * reply is never dropped); -ENOTCONN when the peer is gone.
 */
#define VARLINK_HAVE_MORE 1
bool varlink_connection_wants_more(VarlinkConnection *c);
int varlink_reply_continues(VarlinkConnection *c, json_object *parameters);
/* Convenience: InvalidParameter with {"parameter": name}. */
int varlink_reply_invalid_parameter(VarlinkConnection *c, const char *name);
/* Peer credentials captured with SO_PEERCRED at accept time. */
int varlink_connection_get_peer(VarlinkConnection *c, pid_t *ret_pid, uid_t *ret_uid, gid_t *ret_gid);
/* Keep / drop a connection across an asynchronous reply. */
VarlinkConnection *varlink_connection_ref(VarlinkConnection *c);
VarlinkConnection *varlink_connection_unref(VarlinkConnection *c);

/* ---- client (blocking) ---- */

typedef struct VarlinkClient VarlinkClient;

/* -ENOENT / -ECONNREFUSED when nothing listens at path. */
int varlink_client_connect(const char *path, VarlinkClient **ret);
VarlinkClient *varlink_client_free(VarlinkClient *c);
/*
 * Send one call and wait for its reply. On success returns 0 with
 * *ret_parameters (owned by caller) and *ret_error NULL; when the server
 * answered with an error returns 0 with *ret_error (malloc'd) and its
 * parameters. Negative errno for transport failures (-ECONNRESET, -EBADMSG, ...).
 * timeout_usec 0 means wait forever.
 */
int varlink_client_call(VarlinkClient *c, const char *method, json_object *parameters,
			uint64_t timeout_usec, json_object **ret_parameters, char **ret_error);
/* The two halves of varlink_client_call(); a oneway call gets no reply to receive. */
int varlink_client_send(VarlinkClient *c, const char *method, json_object *parameters, bool oneway,
			uint64_t timeout_usec);
int varlink_client_receive(VarlinkClient *c, uint64_t timeout_usec, json_object **ret_parameters,
			   char **ret_error);
/*
 * With more: the call asks for "continues" replies; receive them with
 * varlink_client_receive_ext() until *ret_continues is false (an error reply
 * always ends the call). timeout_usec applies to each reply.
 */
int varlink_client_send_ext(VarlinkClient *c, const char *method, json_object *parameters,
			    bool more, uint64_t timeout_usec);
int varlink_client_receive_ext(VarlinkClient *c, uint64_t timeout_usec,
			       json_object **ret_parameters, char **ret_error, bool *ret_continues);
