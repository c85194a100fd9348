use super::*;

#[test]
fn defaults_then_file_then_flags() {
    let defaults = ConfigFile::default()
        .resolve(ConfigFile::default())
        .expect("defaults");
    assert_eq!(defaults.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(defaults.database, "sqlite://./boxfence.db");
    assert_eq!(defaults.network.ipv4_pool.to_string(), DEFAULT_IPV4_POOL);
    assert_eq!(defaults.network.ipv6_pool.to_string(), DEFAULT_IPV6_POOL);

    let file: ConfigFile = toml::from_str(
        r#"
        listen = "127.0.0.1:9000"
        admin_token = "from-file"
        [network]
        uplink = "veth-up"
        exempt_cidrs = ["198.51.100.0/24"]
        upstream_dns = ["203.0.113.53", "[2001:db8::53]:5353"]
        [resolver]
        query_rate_per_box = 500
        tcp_connections_per_box = 4
        [exec]
        per_app = 3
        max_timeout = 30
        [create]
        per_app = 2
        "#,
    )
    .expect("parses");
    let flags = ConfigFile {
        admin_token: Some("from-flag".into()),
        exec: ExecFile {
            per_box: Some(1),
            per_app: Some(5),
            ..ExecFile::default()
        },
        ..ConfigFile::default()
    };
    let config = file.resolve(flags).expect("resolves");
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.admin_token.as_deref(), Some("from-flag"));
    assert_eq!(config.network.uplink.as_deref(), Some("veth-up"));
    assert_eq!(config.network.exempt_cidrs.len(), 1);
    assert_eq!(config.network.upstream_dns[0].port(), 53);
    assert_eq!(config.network.upstream_dns[1].port(), 5353);
    assert_eq!(config.resolver.query_rate_per_box, 500);
    assert_eq!(config.resolver.tcp_connections_per_box, 4);
    assert_eq!(
        defaults.resolver.query_rate_per_box,
        boxfence_engine::QUERY_RATE_PER_BOX
    );
    assert_eq!(defaults.resolver.tcp_connections_per_box, 16);
    assert_eq!(defaults.resolver.tcp_connections, 1024);
    let exec = config.limits.exec;
    assert_eq!((exec.per_app, exec.per_box), (5, 1), "flags win");
    assert_eq!(exec.max_timeout, Duration::from_secs(30));
    assert_eq!(exec.max_concurrent, Limits::default().exec.max_concurrent);
    assert_eq!(config.limits.creates_per_app, 2);
    assert_eq!(defaults.limits, Limits::default());
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let error = toml::from_str::<ConfigFile>("listn = \"x\"").expect_err("typo");
    assert!(error.to_string().contains("listn"), "{error}");
    let error = toml::from_str::<ConfigFile>("[network]\nipv4_pool = \"10.0.0.1/33\"")
        .expect_err("bad pool");
    assert!(error.to_string().contains("ipv4_pool"), "{error}");
    let file: ConfigFile =
        toml::from_str("[network]\nupstream_dns = [\"dns.example\"]").expect("parses");
    assert!(file.resolve(ConfigFile::default()).is_err());
    for key in [
        "query_rate_per_box",
        "tcp_connections_per_box",
        "tcp_connections",
    ] {
        let file: ConfigFile = toml::from_str(&format!("[resolver]\n{key} = 0")).expect("parses");
        let error = file.resolve(ConfigFile::default()).expect_err("0 refused");
        assert!(error.to_string().contains(key), "{error}");
    }
    for (text, key) in [
        ("[exec]\nper_box = 0", "exec.per_box"),
        ("[exec]\nmax_concurrent = 0", "exec.max_concurrent"),
        ("[exec]\nmax_timeout = 0", "exec.max_timeout"),
        ("[exec]\nmax_timeout = 86401", "exec.max_timeout"),
        ("[create]\nper_app = 0", "create.per_app"),
    ] {
        let file: ConfigFile = toml::from_str(text).expect("parses");
        let error = file.resolve(ConfigFile::default()).expect_err(text);
        assert!(error.to_string().contains(key), "{error}");
    }
}

#[test]
fn the_readme_example_config_parses() {
    let readme = include_str!("../../../../README.md");
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has a toml block");
    let file: ConfigFile = toml::from_str(block).expect("README config parses");
    let config = file.resolve(ConfigFile::default()).expect("resolves");
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
}

/// `[network] flowtable = false` (or `--no-flowtable`) avoids the kernel
/// feature, so the engine and doctor take the hooks path as for any
/// avoided feature; the default keeps it.
#[test]
fn flowtable_false_avoids_the_flowtable_feature() {
    let avoided = |text: &str, flags: ConfigFile| {
        let file: ConfigFile = toml::from_str(text).expect("parses");
        file.resolve(flags).expect("resolves").kernel.avoid
    };
    assert_eq!(avoided("", ConfigFile::default()), []);
    assert_eq!(
        avoided("[network]\nflowtable = true", ConfigFile::default()),
        []
    );
    assert_eq!(
        avoided("[network]\nflowtable = false", ConfigFile::default()),
        [Feature::Flowtable]
    );
    let both = "[network]\nflowtable = false\n[kernel]\navoid = [\"flowtable\"]";
    assert_eq!(avoided(both, ConfigFile::default()), [Feature::Flowtable]);
    let flag = ConfigFile {
        network: NetworkFile {
            flowtable: Some(false),
            ..NetworkFile::default()
        },
        ..ConfigFile::default()
    };
    assert_eq!(
        avoided("[network]\nflowtable = true", flag),
        [Feature::Flowtable]
    );
}

#[test]
fn names_are_checked_unless_turned_off() {
    let checked = |text: &str| {
        let file: ConfigFile = toml::from_str(text).expect("parses");
        file.resolve(ConfigFile::default())
            .expect("resolves")
            .network
            .name_check
    };
    assert!(checked(""));
    assert!(checked("[network]\nname_check = \"on\""));
    assert!(!checked("[network]\nname_check = \"off\""));
    let error = toml::from_str::<ConfigFile>("[network]\nname_check = \"maybe\"")
        .expect_err("not a setting");
    assert!(error.to_string().contains("name_check"), "{error}");
}
