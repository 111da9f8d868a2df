"""The image store: image configs, tags, and which layers each image stands on.

Configs and tags live in SQLite (their bytes kept exactly, since the image ID is
their digest), in this module's tables `images`, `image_parents` and `tags`, with their
migrations; layers are the LayerStore's. As in Docker's reference store, `tags` holds
both kinds of reference: tags (`name:tag`) and digests (`name@sha256:…`, the manifest
an image was pulled by or pushed as: its RepoDigests). Names are stored normalized
(`docker.io/library/busybox:latest`) and shown in their familiar form. A load, an
import and a commit each hold what they write with a content lease, so a failure
half way leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

from berth.clock import now_rfc3339
from berth.content import digest
from berth.content.leases import Lease
from berth.content.store import file_chunks
from berth.errors import Conflict, InvalidParameter, NotFound
from berth.images import archive, reference
from berth.images.model import History, Image, ImageConfig, RunConfig
from berth.layers.store import LayerStore, chain_id_of
from berth.metadata import Step, migrate

log = logging.getLogger(__name__)
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

MIGRATIONS: list[Step] = [
    # 1: the schema of 623d42e, which made every table at once
    ["CREATE TABLE IF NOT EXISTS images ("
     " id      TEXT PRIMARY KEY,"
     " config  BLOB NOT NULL,"
     " created TEXT NOT NULL,"
     " size    INTEGER NOT NULL)",
     "CREATE TABLE IF NOT EXISTS image_parents ("
     " id     TEXT PRIMARY KEY,"
     " parent TEXT NOT NULL)",
     "CREATE TABLE IF NOT EXISTS tags ("
     " name     TEXT PRIMARY KEY,"
     " image_id TEXT NOT NULL REFERENCES images(id))"],
]


class ImageStore:
    def __init__(self, db: sqlite3.Connection, layers: LayerStore) -> None:
        self.db = db
        migrate(db, "images", MIGRATIONS)
        self.layers = layers
        # called with an image ID when the image is deleted (the build cache forgets it)
        self.on_delete: list[Callable[[str], None]] = []
        # (action, image ID, attributes): berthd's event log listens here
        self.on_event: Callable[[str, str, dict[str, str]], None] = lambda *a: None

    # -- reading ----------------------------------------------------------------------

    def _load(self, image_id: str) -> Image | None:
        row = self.db.execute("SELECT config, size FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            return None
        config = ImageConfig.from_bytes(row[0])
        tags: list[str] = []
        digests: list[str] = []
        for (name,) in self.db.execute("SELECT name FROM tags WHERE image_id=? ORDER BY name", (image_id,)):
            (digests if "@" in name else tags).append(reference.parse(name).familiar())
        chain: list[str] = []
        parent: str | None = None
        for diff_id in config.diff_ids:
            parent = chain_id_of(parent, diff_id)
            chain.append(parent)
        parent_row = self.db.execute("SELECT parent FROM image_parents WHERE id=?", (image_id,)).fetchone()
        return Image(image_id, config, row[1], tags, chain, parent_row[0] if parent_row else "", digests)

    def config_bytes(self, image_id: str) -> bytes:
        row = self.db.execute("SELECT config FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        return bytes(row[0])

    def all(self) -> list[Image]:
        ids = [r[0] for r in self.db.execute("SELECT id FROM images ORDER BY created DESC")]
        return [img for i in ids if (img := self._load(i)) is not None]

    def resolve(self, name: str) -> Image:
        """Find an image by reference, full ID or unique ID prefix; NotFound otherwise."""
        img = self.lookup(name)
        if img is None:
            raise NotFound(f"No such image: {name}")
        return img

    def lookup(self, name: str) -> Image | None:
        if not name:
            return None
        hexpart = name.removeprefix("sha256:")
        if all(c in "0123456789abcdef" for c in hexpart) and len(hexpart) >= 1:
            if len(hexpart) == 64:
                img = self._load("sha256:" + hexpart)
                if img:
                    return img
            elif name.startswith("sha256:") or len(hexpart) >= 1:
                rows = self.db.execute("SELECT id FROM images WHERE id LIKE ?",
                                       (f"sha256:{hexpart}%",)).fetchall()
                if len(rows) == 1 and (name.startswith("sha256:") or not self._tag_exists(name)):
                    return self._load(rows[0][0])
        try:
            ref = reference.parse(name)
        except InvalidParameter:
            return None
        row = self.db.execute("SELECT image_id FROM tags WHERE name=?", (str(ref),)).fetchone()
        return self._load(row[0]) if row else None

    def _tag_exists(self, name: str) -> bool:
        try:
            ref = reference.parse(name)
        except InvalidParameter:
            return False
        return self.db.execute("SELECT 1 FROM tags WHERE name=?", (str(ref),)).fetchone() is not None

    # -- writing ------------------------------------------------------------------------

    def add(self, config: ImageConfig, size: int) -> str:
        data = config.to_bytes()
        image_id = digest.of_bytes(data)
        self.db.execute("INSERT OR IGNORE INTO images VALUES (?,?,?,?)",
                        (image_id, data, config.created, size))
        return image_id

    def set_parent(self, image_id: str, parent: str) -> None:
        """Record that `image_id` was made from `parent` (commit, build), as Docker's
        classic store does: it hides untagged parents from `docker images` and lets
        `rmi` take them along with their last child."""
        if parent and parent != image_id:
            self.db.execute("INSERT OR REPLACE INTO image_parents VALUES (?,?)", (image_id, parent))

    def children(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM image_parents WHERE parent=?", (image_id,))]

    def is_intermediate(self, img: Image) -> bool:
        """An untagged image that other images were made from: shown by `images -a` only."""
        return not img.repo_tags and not img.repo_digests and bool(self.children(img.id))

    def tag(self, image_id: str, name: str) -> None:
        ref = self._add_tag(image_id, name)
        self.log_event("tag", image_id, ref.familiar())

    def _add_tag(self, image_id: str, name: str) -> reference.Reference:
        ref = reference.parse(name)
        if ref.digest:
            raise InvalidParameter(f"refusing to create a tag with a digest reference: {name}")
        self.db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (str(ref), image_id))
        return ref

    def add_digest(self, image_id: str, name: str, manifest_digest: str) -> None:
        """Record that `image_id` is the manifest `manifest_digest` of repository `name`
        (a pull or a push): one of its RepoDigests."""
        ref = reference.parse(name, default_tag=False)
        self.db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (f"{ref.name}@{manifest_digest}", image_id))

    def commit_pulled(self, config: bytes, size: int, names: list[str], manifest_digest: str,
                      repository: str) -> str:
        """Store a pulled image's config (its layers are in the layer store already),
        tag it with `names` and record its digest in `repository`, in one transaction."""
        image_id = digest.of_bytes(config)
        try:
            created = str(json.loads(config).get("created") or "")
        except ValueError:
            created = ""
        self.db.execute("BEGIN")
        try:
            self.db.execute("INSERT OR IGNORE INTO images VALUES (?,?,?,?)", (image_id, config, created, size))
            for name in names:
                self._add_tag(image_id, name)
            self.add_digest(image_id, repository, manifest_digest)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return image_id

    def collect_unused_layers(self) -> list[str]:
        """At start-up: remove the layers no image stands on (what a pull, load, build or
        commit that berthd was killed in had made before its image was recorded)."""
        chains = [row[0] for row in self.db.execute("SELECT chain_id FROM layers")]
        gone = self.collect_layers(chains)
        if gone:
            log.warning("removed %d layers that no image uses (left by an operation berthd did not finish)",
                        len(gone))
        return gone

    def log_event(self, action: str, image_id: str, name: str = "") -> None:
        """Report an image event, as dockerd does: the image's labels (while it still
        exists) and `name` (dockerd's graphdriver store names most events by image ID)."""
        img = self._load(image_id)
        attributes = dict(img.config.config.labels) if img is not None else {}
        if name:
            attributes["name"] = name
        self.on_event(action, image_id, attributes)

    async def import_rootfs(self, chunks: AsyncIterator[bytes], repo_tag: str | None,
                            run_config: RunConfig, message: str) -> str:
        """`docker import`: one layer from a rootfs tar, with `run_config` (what `--change` made)."""
        if repo_tag:
            reference.parse(repo_tag)  # refuse a bad name before reading the archive
        with self.layers.content.lease({"berth.operation": "import"}) as lease:
            layer = await self.layers.apply(chunks, None, lease=lease)
            created = now_rfc3339()
            config = ImageConfig(
                created=created, architecture=ARCH, os="linux", config=run_config,
                diff_ids=[layer.diff_id], comment=message or "",
                history=[History(created=created, created_by="", comment=message or "Imported from -")],
            )
            image_id = self.add(config, layer.size)
        if repo_tag:
            self.tag(image_id, repo_tag)
        self.log_event("import", image_id, image_id)
        return image_id

    async def commit(self, parent: Image, layer_tar: str, run_config: RunConfig, *, created_by: str,
                     author: str, comment: str, repo_tag: str | None, container: str = "",
                     container_config: dict[str, Any] | None = None) -> str:
        """`docker commit`: a child of `parent` with one more layer, read from `layer_tar`;
        `container` and its config (Docker's container.Config document) recorded in it."""
        if repo_tag:
            reference.parse(repo_tag)  # refuse a bad name before storing the layer
        top = parent.chain_ids[-1] if parent.chain_ids else None
        with self.layers.content.lease({"berth.operation": "commit"}) as lease:
            layer = await self.layers.apply(file_chunks(layer_tar), top, lease=lease)
            created = now_rfc3339()
            config = ImageConfig(
                created=created, architecture=parent.config.architecture or ARCH, os=parent.config.os or "linux",
                config=run_config, diff_ids=[*parent.config.diff_ids, layer.diff_id],
                history=[*parent.config.history, History(created=created, created_by=created_by, comment=comment)],
                author=author, comment=comment, container=container, container_config=container_config,
            )
            image_id = self.add(config, parent.size + layer.size)
            self.set_parent(image_id, parent.id)
        self.log_event("create", image_id, image_id)
        if repo_tag:
            self.tag(image_id, repo_tag)
        return image_id

    def layers_size(self) -> int:
        """What all stored layers take, counting a layer shared by images once."""
        return self.layers.total_size()

    def prune(self, candidates: list[Image], used: set[str], dangling_only: bool) -> tuple[list[dict[str, str]], int]:
        """`docker image prune`: remove `candidates` that no container uses (only the
        untagged ones when `dangling_only`); returns what went and the bytes freed."""
        before = self.layers_size()
        results: list[dict[str, str]] = []
        for img in candidates:
            if img.id in used or (dangling_only and img.repo_tags) or self.children(img.id):
                continue
            for tag in img.repo_tags + img.repo_digests:
                results.append({"Untagged": self.untag(tag)})
                self.log_event("untag", img.id, img.id)
            self._delete(img, results)
        reclaimed = before - self.layers_size()
        self.on_event("prune", "", {"reclaimed": str(reclaimed)})
        return results, reclaimed

    # -- save and load ------------------------------------------------------------------

    def save_selection(self, names: list[str]) -> list[archive.SaveImage]:
        """The images `docker save NAME…` writes, each with the tags it is saved under.

        As in dockerd: a name with a tag saves that tag, a bare repository name saves all
        of its tags, an image ID saves the image untagged. NotFound before anything else.
        """
        chosen: dict[str, archive.SaveImage] = {}
        for name in names:
            for img, refs in self._select(name):
                entry = chosen.get(img.id)
                if entry is None:
                    entry = chosen[img.id] = self._save_image(img)
                entry.tags.extend(r for r in refs if r not in entry.tags)
        return list(chosen.values())

    def _select(self, name: str) -> list[tuple[Image, list[reference.Reference]]]:
        try:
            ref = reference.parse(name, default_tag=False)
        except InvalidParameter:
            ref = None
        if ref is not None and not ref.tag and not ref.digest and not self._is_id(name):
            found: dict[str, list[reference.Reference]] = {}
            for tag_name, image_id in self.db.execute("SELECT name, image_id FROM tags ORDER BY name"):
                tagged = reference.parse(tag_name)
                if tagged.name == ref.name:
                    found.setdefault(image_id, []).append(tagged)
            selected = [(img, refs) for image_id, refs in found.items()
                        if (img := self._load(image_id)) is not None]
            if selected:
                return selected
        img = self.resolve(name)
        if self._is_id(name) and not self._tag_exists(name):
            return [(img, [])]
        return [(img, [reference.parse(name)] if ref is not None and not ref.digest else [])]

    def _is_id(self, name: str) -> bool:
        hexpart = name.removeprefix("sha256:")
        return bool(hexpart) and all(c in "0123456789abcdef" for c in hexpart) and (
            self.db.execute("SELECT 1 FROM images WHERE id LIKE ?", (f"sha256:{hexpart}%",)).fetchone()
            is not None)

    def _save_image(self, img: Image) -> archive.SaveImage:
        content = self.layers.content
        layers = []
        for diff_id in img.config.diff_ids:
            if not content.has(diff_id):
                raise NotFound(f"cannot save {img.id}: the tar of layer {diff_id} was not kept "
                               "(the image was stored by an older berth); re-import it")
            layers.append(archive.LayerBlob(diff_id, content.size(diff_id)))
        return archive.SaveImage(img.id, self.config_bytes(img.id), layers)

    async def load_archive(self, chunks: AsyncIterator[bytes]) -> list[str]:
        """`docker load`: store every image of an archive, or nothing; returns the
        lines to show ("Loaded image: …")."""
        spool = await asyncio.to_thread(self.layers.content.spool_dir)
        try:
            with self.layers.content.lease({"berth.operation": "load"}) as lease:
                plan = await self.layers.content.read_stream(
                    chunks, lambda stream: archive.spool_archive(stream, spool, ARCH))
                created: list[str] = []
                try:
                    sizes = [await self._apply_layers(item, created, lease) for item in plan]
                except BaseException:
                    self.collect_layers(created)
                    raise
                return self._commit_loaded(plan, sizes)
        finally:
            await asyncio.to_thread(shutil.rmtree, spool, True)

    async def _apply_layers(self, item: archive.LoadImage, created: list[str], lease: Lease) -> int:
        parent: str | None = None
        size = 0
        for diff_id, member in zip(item.diff_ids, item.layers, strict=True):
            chain_id = chain_id_of(parent, diff_id)
            layer = self.layers.get(chain_id)
            if layer is not None:  # stored already; the archive must still be right
                actual = member.sha256
                if actual != diff_id:
                    actual = await asyncio.to_thread(archive.member_digest, member)
                if actual != diff_id:
                    raise InvalidParameter(f"invalid image archive: layer {member.name}: digest "
                                           f"mismatch: the content is {actual}, expected {diff_id}")
            else:
                try:
                    layer = await self.layers.apply_file(member.path, member.offset, member.size,
                                                         parent, expected=diff_id,
                                                         digest=member.sha256, lease=lease)
                except InvalidParameter as e:
                    raise InvalidParameter(f"invalid image archive: layer {member.name}: {e}") from None
                created.append(layer.chain_id)
            parent = layer.chain_id
            size += layer.size
        return size

    def _commit_loaded(self, plan: list[archive.LoadImage], sizes: list[int]) -> list[str]:
        lines = []
        self.db.execute("BEGIN")
        try:
            for item, size in zip(plan, sizes, strict=True):
                created = ""
                try:
                    created = str(json.loads(item.config).get("created") or "")
                except ValueError:
                    pass
                self.db.execute("INSERT OR IGNORE INTO images VALUES (?,?,?,?)",
                                (item.image_id, item.config, created, size))
                for tag_name in item.repo_tags:
                    self._add_tag(item.image_id, tag_name)  # dockerd reports no tag here, only the load
                    lines.append(f"Loaded image: {reference.parse(tag_name).familiar()}")
                if not item.repo_tags:
                    lines.append(f"Loaded image ID: {item.image_id}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        for item in plan:
            self.log_event("load", item.image_id, item.image_id)
        return lines

    def untag(self, name: str) -> str:
        ref = reference.parse(name)
        cur = self.db.execute("DELETE FROM tags WHERE name=?", (str(ref),))
        if cur.rowcount == 0:
            raise NotFound(f"No such image: {name}")
        return ref.familiar()

    def remove(self, name: str, force: bool, used_by: dict[str, tuple[str, bool]]) -> list[dict[str, str]]:
        """`docker rmi`: untag, and delete the image once no tag or container holds it.

        `used_by` maps image IDs to (a container ID that uses it, whether it runs).
        """
        img = self.resolve(name)
        results: list[dict[str, str]] = []
        by_id = name.removeprefix("sha256:") and img.id.removeprefix("sha256:").startswith(
            name.removeprefix("sha256:")) and not self._tag_exists(name)
        if not by_id:
            if img.id in used_by and len(img.repo_tags) == 1 and not force:
                raise Conflict(f"conflict: unable to remove repository reference \"{name}\" "
                               f"(must force) - container {used_by[img.id][0][:12]} is using its "
                               f"referenced image {img.id.removeprefix('sha256:')[:12]}")
            untagged = self.untag(name)
            results.append({"Untagged": untagged})
            self.log_event("untag", img.id, img.id)
            results += self._untag_orphaned_digests(img.id, reference.parse(name))
            if self.db.execute("SELECT 1 FROM tags WHERE image_id=?", (img.id,)).fetchone():
                return results
        else:
            if self.children(img.id):
                raise Conflict(f"conflict: unable to delete {img.id.removeprefix('sha256:')[:12]} "
                               "(cannot be forced) - image has dependent child images")
            if len(img.repo_tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {img.id.removeprefix('sha256:')[:12]} "
                               "(must be forced) - image is referenced in multiple repositories")
            if img.id in used_by:
                cid, running = used_by[img.id]
                short = img.id.removeprefix("sha256:")[:12]
                if running:
                    raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - "
                                   f"image is being used by running container {cid[:12]}")
                if not force:
                    raise Conflict(f"conflict: unable to delete {short} (must be forced) - "
                                   f"image is being used by stopped container {cid[:12]}")
            for tag in img.repo_tags + img.repo_digests:
                results.append({"Untagged": self.untag(tag)})
                self.log_event("untag", img.id, img.id)
        if img.id in used_by or self.children(img.id):
            return results  # a container or a child image still stands on it: Docker leaves it, untagged
        self._delete(img, results)
        # and the untagged parents nothing else needs any more (rmi's default, --no-prune aside)
        parent = img.parent
        while parent:
            up = self._load(parent)
            if up is None or up.repo_tags or up.id in used_by or self.children(up.id):
                break
            self._delete(up, results)
            parent = up.parent
        return results

    def _untag_orphaned_digests(self, image_id: str, removed: reference.Reference) -> list[dict[str, str]]:
        """After a tag of a repository is removed: when no other tag of that repository
        names the image, its digest references in that repository go too (as Docker)."""
        if removed.digest:
            return []
        names = [r[0] for r in self.db.execute("SELECT name FROM tags WHERE image_id=?", (image_id,))]
        same_repo = [n for n in names if reference.parse(n, default_tag=False).name == removed.name]
        if any("@" not in n for n in same_repo):
            return []
        out = []
        for name in same_repo:
            self.db.execute("DELETE FROM tags WHERE name=?", (name,))
            out.append({"Untagged": reference.parse(name, default_tag=False).familiar()})
        return out

    def _delete(self, img: Image, results: list[dict[str, str]]) -> None:
        self.db.execute("DELETE FROM tags WHERE image_id=?", (img.id,))
        self.db.execute("DELETE FROM images WHERE id=?", (img.id,))
        self.db.execute("DELETE FROM image_parents WHERE id=?", (img.id,))
        for forget in self.on_delete:
            forget(img.id)
        results.append({"Deleted": img.id})
        self.log_event("delete", img.id, img.id)
        self.collect_layers(img.chain_ids)

    def collect_layers(self, chain_ids: list[str]) -> list[str]:
        """Remove layers no remaining image stands on; returns their chain IDs."""
        in_use: set[str] = set()
        for (data,) in self.db.execute("SELECT config FROM images"):
            parent: str | None = None
            for diff_id in json.loads(data).get("rootfs", {}).get("diff_ids", []):
                parent = chain_id_of(parent, diff_id)
                in_use.add(parent)
        gone = []
        for chain_id in reversed(chain_ids):
            if chain_id not in in_use:
                self.layers.remove(chain_id)
                gone.append(chain_id)
        return gone


def merge_run_config(user: RunConfig, base: RunConfig) -> RunConfig:
    """Fill what `user` leaves unset from `base`, as dockerd merges a commit's config
    into the container's: lists and maps are joined, the command pair moves together."""
    user.user = user.user or base.user
    user.exposed_ports = sorted(set(user.exposed_ports) | set(base.exposed_ports))
    keys = {e.split("=", 1)[0] for e in user.env}
    user.env = user.env + [e for e in base.env if e.split("=", 1)[0] not in keys]
    if not user.entrypoint:
        if not user.cmd:
            user.cmd = base.cmd
        if user.entrypoint is None:  # an empty one given stays empty
            user.entrypoint = base.entrypoint
    if base.healthcheck is not None:
        if user.healthcheck is None:
            user.healthcheck = base.healthcheck
        else:
            mine, theirs = user.healthcheck, base.healthcheck
            mine.test = mine.test or theirs.test
            mine.interval = mine.interval or theirs.interval
            mine.timeout = mine.timeout or theirs.timeout
            mine.start_period = mine.start_period or theirs.start_period
            mine.start_interval = mine.start_interval or theirs.start_interval
            mine.retries = mine.retries or theirs.retries
    user.working_dir = user.working_dir or base.working_dir
    user.volumes = sorted(set(user.volumes) | set(base.volumes))
    user.stop_signal = user.stop_signal or base.stop_signal
    user.labels = {**base.labels, **user.labels}
    user.on_build = user.on_build or list(base.on_build)
    return user
