"""Helpers for tests that drive SMB through smbprotocol's low-level API (one share, user nas)."""

import uuid


def smb_tree(port, user="nas", password="secret1", share="share"):
    """A connected (Connection, TreeConnect) for `share` as `user`."""
    from smbprotocol.connection import Connection
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect
    conn = Connection(uuid.uuid4(), "127.0.0.1", port)
    conn.connect()
    session = Session(conn, user, password, require_encryption=False)
    session.connect()
    tree = TreeConnect(session, rf"\\127.0.0.1\{share}")
    tree.connect()
    return conn, tree


def smb_create(tree, name, write_through=False):
    """Opens `name` for reading and writing, created or truncated (with FILE_WRITE_THROUGH
    when `write_through`)."""
    from smbprotocol.open import CreateDisposition, CreateOptions, FileAttributes, ImpersonationLevel, Open, ShareAccess
    handle = Open(tree, name)
    handle.create(ImpersonationLevel.Impersonation, 0x0012019F, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                  ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_OVERWRITE_IF,
                  CreateOptions.FILE_NON_DIRECTORY_FILE | (CreateOptions.FILE_WRITE_THROUGH if write_through else 0))
    return handle
