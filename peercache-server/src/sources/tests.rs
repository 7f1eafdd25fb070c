use super::*;

/// The error of parsing `group` (the lines after `[[group]]`).
fn refusal(group: &str) -> String {
    toml::from_str::<Config>(&format!("[[group]]\n{group}\n"))
        .unwrap_err()
        .to_string()
}

#[test]
fn configs_parse_into_typed_sources() {
    let config: Config = toml::from_str(
        r#"
        [[group]]
        name = "pages"
        source = "http"
        url = "http://127.0.0.1:9000/{key}"
        timeout = "2s"

        [[group]]
        name = "assets"
        source = "files"
        dir = "/srv/assets"
        cache_bytes = "16MiB"
        max_file_bytes = "1MiB"
        dotfiles = true

        [[group]]
        name = "rows"
        source = "sqlite"
        database = "pages.db"
        query = "SELECT body FROM pages WHERE id = ?"
        ttl = "10m"
        "#,
    )
    .unwrap();
    let [pages, assets, rows] = &config.groups[..] else {
        panic!("{:?}", config.groups);
    };
    assert_eq!(pages.name, "pages");
    assert_eq!(
        pages.source,
        Source::Http(HttpConfig {
            url: "http://127.0.0.1:9000/{key}".to_owned(),
            timeout: Some("2s".to_owned()),
            ca: None,
        })
    );
    assert_eq!(assets.cache_bytes.as_deref(), Some("16MiB"));
    assert_eq!(
        assets.source,
        Source::Files(FilesConfig {
            dir: "/srv/assets".into(),
            max_file_bytes: Some("1MiB".to_owned()),
            dotfiles: true,
        })
    );
    assert_eq!(rows.ttl.as_deref(), Some("10m"));
    assert_eq!(rows.source.kind(), "sqlite");
    let https = toml::from_str::<Config>(
        "[[group]]\nname = \"x\"\nsource = \"http\"\nurl = \"https://a/{key}\"\nca = \"ca.pem\"\n",
    )
    .unwrap();
    assert!(matches!(&https.groups[0].source, Source::Http(h) if h.ca.is_some()));
    assert!(HttpSource::new("ftp://x/{key}", None, None).is_err());
    assert!(HttpSource::new("http://x/", None, None).is_err());
}

#[test]
fn missing_and_unknown_sources_are_refused_naming_the_group() {
    let missing = refusal("name = \"pages\"\nsource = \"http\"");
    assert!(
        missing.contains("group \"pages\": missing field `url`") && missing.contains("needs url"),
        "{missing}"
    );
    let files = refusal("name = \"x\"\nsource = \"files\"");
    assert!(
        files.contains("missing field `dir`") && files.contains("needs dir"),
        "{files}"
    );
    let sqlite = refusal("name = \"x\"\nsource = \"sqlite\"\ndatabase = \"a.db\"");
    assert!(sqlite.contains("missing field `query`"), "{sqlite}");
    let ftp = refusal("name = \"x\"\nsource = \"ftp\"");
    assert!(ftp.contains("unknown source \"ftp\""), "{ftp}");
    let none = refusal("name = \"x\"\ndir = \"d\"");
    assert!(none.contains("missing field `source`"), "{none}");
    let nameless = refusal("source = \"files\"\ndir = \"d\"");
    assert!(nameless.contains("missing field `name`"), "{nameless}");
    let stray = refusal("name = \"x\"\nsource = \"files\"\ndir = \"d\"\nnmae = \"y\"");
    assert!(stray.contains("unknown field `nmae`"), "{stray}");
}

#[test]
fn fields_of_another_source_are_refused_naming_the_field() {
    for (source, extra, field) in [
        (
            "source = \"files\"\ndir = \"d\"",
            "url = \"http://a/{key}\"",
            "url",
        ),
        (
            "source = \"files\"\ndir = \"d\"",
            "timeout = \"1s\"",
            "timeout",
        ),
        ("source = \"files\"\ndir = \"d\"", "ca = \"ca.pem\"", "ca"),
        (
            "source = \"files\"\ndir = \"d\"",
            "query = \"SELECT 1\"",
            "query",
        ),
        (
            "source = \"http\"\nurl = \"http://a/{key}\"",
            "dotfiles = true",
            "dotfiles",
        ),
        (
            "source = \"http\"\nurl = \"http://a/{key}\"",
            "max_file_bytes = \"1MiB\"",
            "max_file_bytes",
        ),
        (
            "source = \"http\"\nurl = \"http://a/{key}\"",
            "dir = \"d\"",
            "dir",
        ),
        (
            "source = \"http\"\nurl = \"http://a/{key}\"",
            "database = \"a.db\"",
            "database",
        ),
        (
            "source = \"sqlite\"\ndatabase = \"a.db\"\nquery = \"SELECT 1 WHERE ? = 1\"",
            "dotfiles = false",
            "dotfiles",
        ),
    ] {
        let error = refusal(&format!("name = \"x\"\n{source}\n{extra}"));
        assert!(
            error.contains(&format!("group \"x\": unknown field `{field}`")),
            "{extra}: {error}"
        );
    }
    let ca_on_http =
        refusal("name = \"x\"\nsource = \"http\"\nurl = \"http://a/{key}\"\nca = \"ca.pem\"");
    assert!(
        ca_on_http.contains("ca is for https:// origins"),
        "{ca_on_http}"
    );
}

#[test]
fn wrong_types_name_the_field() {
    for (group, field) in [
        (
            "source = \"files\"\ndir = \"d\"\ndotfiles = \"yes\"",
            "dotfiles",
        ),
        ("source = \"http\"\nurl = 5", "url"),
        ("source = \"files\"\ndir = \"d\"\nttl = 10", "ttl"),
    ] {
        let error = refusal(&format!("name = \"x\"\n{group}"));
        assert!(
            error.contains("invalid type") && error.contains(&format!("in `{field}`")),
            "{group}: {error}"
        );
    }
}
