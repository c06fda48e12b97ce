/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The io.coherentd varlink interface (daemon/io.coherentd.varlink): the
 * method table and the JSON the methods answer with. Builders take plain
 * structs so unit tests check the replies without a socket.
 */

#include <json-c/json.h>
#include <stdint.h>

#include "devices.h"
#include "varlink.h"

struct Manager;

extern const VarlinkServerInfo api_server_info;
extern const VarlinkInterface api_interfaces[];
extern const VarlinkMethod api_methods[];

/* A Device as in the IDL; NULL on allocation failure. */
json_object *api_device_to_json(const Device *d);
/* ListDevices reply parameters. */
json_object *api_list_devices_reply(const Device *devices, size_t n);
/* GetStatus reply parameters; now_usec is CLOCK_MONOTONIC. */
json_object *api_get_status_reply(const struct Manager *m, unsigned n_connections,
				  uint64_t now_usec);
