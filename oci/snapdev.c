/* The devices a snapshot needs host sides for, read from its device sections (kind and
 * name, docs/snapshot-format.md) so create can decide everything before it starts the
 * VMM: an image whose annotations do not match its snapshot costs nothing. */
#include "oci/oci.h"

#include "common/log.h"
#include "restore/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The `name` field of a device.virtio<k> section: the device's id= (docs/snapshot-format.md). */
#define DEV_NAME_TAG 7

int oci_snapshot_devices(const char *path, struct oci_snap_devices *d, char *err, size_t errlen)
{
	struct snap *s;
	int ret;

	memset(d, 0, sizeof(*d));
	ret = snap_open(path, &s, err, errlen);
	if (ret)
		return ret;
	for (size_t i = 0; i < snap_section_count(s); i++) {
		const struct snap_section *sec = snap_section_at(s, i);
		struct snap_device_place place;
		char kind[32], name[OCI_DEV_ID_MAX + 2];
		enum oci_dev_kind k;

		if (strncmp(sec->name, "device.virtio", 13))
			continue;
		if (snap_device_get_place(sec, kind, sizeof(kind), &place) ||
		    snap_get_strbuf(sec, DEV_NAME_TAG, name, sizeof(name))) {
			ret = errf(err, errlen, -EBADMSG,
				   "snapshot %s: section %s has no kind or name", path, sec->name);
			goto out;
		}
		if (!strcmp(kind, "virtio-blk")) {
			k = OCI_DEV_DRIVE;
		} else if (!strcmp(kind, "virtio-net")) {
			k = OCI_DEV_NET;
		} else if (!strcmp(kind, "virtio-vsock")) {
			k = OCI_DEV_VSOCK;
		} else {
			continue; /* the rng has no host side; the VMM judges unknown kinds */
		}
		if (d->n == sizeof(d->dev) / sizeof(d->dev[0]) || strlen(name) > OCI_DEV_ID_MAX) {
			ret = errf(err, errlen, -EBADMSG,
				   "snapshot %s: too many devices, or a device id too long", path);
			goto out;
		}
		d->dev[d->n].kind = k;
		snprintf(d->dev[d->n].id, sizeof(d->dev[d->n].id), "%s", name);
		d->n++;
	}
out:
	snap_close(s);
	return ret;
}
