"""Uploading a model folder to the Hugging Face Hub: checked before any work (``publish_problems``), resumable and
skipped when done (``files_to_upload``); the README's "Model cards and publishing" says what users see.
"""
import hashlib
import re
from pathlib import Path

from pipeline.errors import ExtremeBertError, first_line

# What a Hugging Face user access token looks like: refused wherever a setting or flag holds one.
TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{20,}")
LOGIN_HINT = "run `hf auth login` (or set HF_TOKEN)"


class PublishError(ExtremeBertError):
    """The upload failed (no network, the Hub refused); the model folder is as it was, and rerunning uploads the
    files that are still missing."""


def looks_like_token(value) -> bool:
    return isinstance(value, str) and bool(TOKEN_PATTERN.search(value))


def publish_problems(repo: str, where: str) -> list:
    """Why an upload to ``repo`` (named by ``where``, a setting or flag) cannot start, one line each: cheap, local
    checks, run before any expensive work."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if looks_like_token(repo):
        return [f"{where} holds what looks like a Hugging Face token: give the repository name there, and the token"
                f" through HF_TOKEN or `hf auth login`, never in a config"]
    if not repo:
        return [f"{where} is empty: name the Hub repository to upload to (\"user/name\" or \"name\")"]
    problems = []
    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        problems.append(f"{where} = {repo!r} is not a Hub repository name: {first_line(e)}")
    if get_token() is None:  # $HF_TOKEN or the login cache
        problems.append(f"publishing to the Hub needs a Hugging Face token and none was found: {LOGIN_HINT}, then"
                        f" rerun")
    if constants.HF_HUB_OFFLINE:
        problems.append("publishing uploads to the Hub but HF_HUB_OFFLINE=1 is set: unset it, then rerun")
    return problems


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the Hub's listing) gives a file of this content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def local_files(folder) -> dict:
    """``{relative name: {"bytes", "sha256", "git_sha1"}}`` of every file under ``folder`` (hidden names, temporary
    or partial files, are left out)."""
    folder = Path(folder)
    names = {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}
    return {name: _file_record(path) for name, path in names.items()
            if not any(part.startswith(".") for part in name.split("/"))}


def _file_record(path: Path) -> dict:
    """Size, sha256 and git blob id of one file, read once in blocks (a model's weights may be gigabytes)."""
    size = path.stat().st_size
    sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha256.update(block)
            sha1.update(block)
    return {"bytes": size, "sha256": sha256.hexdigest(), "git_sha1": sha1.hexdigest()}


def remote_files(entries) -> dict:
    """``{name: {"bytes", "sha256" (LFS files, else None), "blob_id"}}`` of a ``list_repo_tree(expand=True)``
    listing (its folders are left out)."""
    records = {}
    for entry in entries:
        if not hasattr(entry, "blob_id"):
            continue
        lfs = getattr(entry, "lfs", None)
        sha256 = lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
        records[entry.path] = {"bytes": entry.size, "sha256": sha256, "blob_id": entry.blob_id}
    return records


def files_to_upload(local: dict, remote: dict) -> list:
    """The names of ``local`` that ``remote`` lacks or holds with another content: by sha256 where the Hub keeps
    the file in LFS, else by git blob id. Files only the Hub has stay (the card of another upload, .gitattributes)."""

    def differs(mine: dict, theirs) -> bool:
        if theirs is None or theirs.get("bytes") != mine["bytes"]:
            return True
        if theirs.get("sha256"):
            return theirs["sha256"] != mine["sha256"]
        return theirs.get("blob_id") != mine["git_sha1"]

    return [name for name, mine in sorted(local.items()) if differs(mine, remote.get(name))]


def _network_errors() -> tuple:
    """The exceptions that mean "the Hub is out of reach or refused": OfflineModeIsEnabled and connection errors
    (OSErrors), the HTTP client's errors and the Hub's own."""
    from huggingface_hub.errors import HfHubHTTPError

    errors = [OSError, HfHubHTTPError]
    try:
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:
        pass
    return tuple(errors)


def publish_folder(folder, repo: str, private: bool, message: str) -> str:
    """Upload the files of ``folder`` that ``repo`` lacks or holds otherwise (creating it, ``private`` when new);
    returns one line saying what was done. Raises ``PublishError`` (one line) when the Hub is out of reach."""
    from huggingface_hub import HfApi, get_token

    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"nothing to publish: {folder} does not exist")
    token = get_token()
    if token is None:
        raise PublishError(f"publishing to {repo} needs a Hugging Face token and none was found: {LOGIN_HINT}")
    api = HfApi(token=token)
    local = local_files(folder)
    try:
        repo_id = api.create_repo(repo, private=private, exist_ok=True).repo_id
        remote = remote_files(api.list_repo_tree(repo_id, recursive=True, expand=True))
        differ = files_to_upload(local, remote)
        if not differ:
            return f"{repo_id}: the Hub already holds these {len(local)} files of {folder}; nothing uploaded"
        api.upload_folder(repo_id=repo_id, folder_path=folder, allow_patterns=differ, commit_message=message)
    except _network_errors() as e:
        raise PublishError(f"could not publish {folder} to {repo} ({first_line(e)}): check the network and the"
                           f" token ({LOGIN_HINT}), then rerun; the model folder is unchanged") from e
    return f"{repo_id}: uploaded {len(differ)} of {len(local)} files of {folder}"
