//! The `[api]` section: the API's unix socket, where local clients (the
//! CNI plugin) are let in by their credentials instead of a token.

use std::path::PathBuf;

use boxfence_server::UnixSocket;
use serde::Deserialize;

/// The `[api]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiFile {
    /// Where the socket is made; none: no unix socket.
    pub(crate) unix_socket: Option<PathBuf>,
    /// Users let in besides root.
    pub(crate) unix_socket_uids: Option<Vec<u32>>,
    /// Groups let in; the first owns the socket file.
    pub(crate) unix_socket_gids: Option<Vec<u32>>,
}

/// `overrides` over `file`: the unix socket, if one is configured.
pub(super) fn resolve_api(overrides: ApiFile, file: ApiFile) -> Option<UnixSocket> {
    Some(UnixSocket {
        path: overrides.unix_socket.or(file.unix_socket)?,
        uids: overrides
            .unix_socket_uids
            .or(file.unix_socket_uids)
            .unwrap_or_default(),
        gids: overrides
            .unix_socket_gids
            .or(file.unix_socket_gids)
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_off_unless_a_path_is_given() {
        let file: ApiFile = toml::from_str("unix_socket_uids = [1000]").expect("parses");
        assert_eq!(resolve_api(ApiFile::default(), file), None);
        let file: ApiFile =
            toml::from_str("unix_socket = \"/run/boxfence/api.sock\"\nunix_socket_gids = [997]")
                .expect("parses");
        let socket = resolve_api(ApiFile::default(), file).expect("configured");
        assert_eq!(socket.path, PathBuf::from("/run/boxfence/api.sock"));
        assert_eq!(socket.gids, vec![997]);
        assert!(socket.uids.is_empty());
    }
}
