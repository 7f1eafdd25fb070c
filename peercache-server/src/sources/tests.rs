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

#[test]
fn sqlite_takes_query_many() {
    let config: Config = toml::from_str(
        "[[group]]\nname = \"rows\"\nsource = \"sqlite\"\ndatabase = \"a.db\"\n\
         query = \"SELECT body FROM pages WHERE id = ?\"\n\
         query_many = \"SELECT id, body FROM pages WHERE id IN (?)\"\n",
    )
    .unwrap();
    let Source::Sqlite(sqlite) = &config.groups[0].source else {
        panic!("{config:?}");
    };
    assert_eq!(
        sqlite.query_many.as_deref(),
        Some("SELECT id, body FROM pages WHERE id IN (?)")
    );
    let usage = refusal("name = \"x\"\nsource = \"sqlite\"\nquery = \"SELECT 1\"");
    assert!(usage.contains("takes query_many"), "{usage}");
}

/// A database of `pages` (text keys) and `nums` (integer keys), made anew
/// as `name` in the temporary directory.
#[cfg(feature = "sqlite")]
fn sqlite_database(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "peercache-sources-{}-{name}.db",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE pages (id TEXT PRIMARY KEY, body BLOB);
         INSERT INTO pages VALUES ('a', 'A'), ('b', x'00ff'), ('n', NULL), ('c', 'C'),
           ('d', 'D'), ('e', 'E'), ('f', 'F'), ('g', 'G'), ('h', 'H');
         CREATE TABLE nums (id INTEGER PRIMARY KEY, word TEXT);
         INSERT INTO nums VALUES (1, 'one'), (2, 'two');",
    )
    .unwrap();
    path
}

/// What each answer is: the value as text, `404`, or `error`.
#[cfg(feature = "sqlite")]
fn shown(answers: &[Result<peercache::Value, peercache::LoadError>]) -> Vec<String> {
    answers
        .iter()
        .map(|answer| match answer {
            Ok(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            Err(error) if error.is_not_found() => "404".to_owned(),
            Err(error) => format!("error: {error}"),
        })
        .collect()
}

/// Times the statement `sql` ran on `connection` (cached statements keep
/// their counters).
#[cfg(feature = "sqlite")]
fn runs(connection: &rusqlite::Connection, sql: &str) -> i32 {
    let statement = connection.prepare_cached(sql).unwrap();
    statement.get_status(rusqlite::StatementStatus::Run)
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_batches_are_one_query_per_chunk_answered_in_order() {
    use peercache::Loader;
    let path = sqlite_database("chunks");
    let many = "SELECT id, body FROM pages WHERE id IN (?) ORDER BY id DESC";
    let source =
        SqliteSource::new(&path, "SELECT body FROM pages WHERE id = ?", Some(many)).unwrap();
    {
        // Three parameters per query at most: 10 keys are 4 queries.
        let idle = source.idle.lock().unwrap();
        let limit = rusqlite::limits::Limit::SQLITE_LIMIT_VARIABLE_NUMBER;
        idle[0].set_limit(limit, 3).unwrap();
        assert_eq!(idle[0].limit(limit).unwrap(), 3);
    }
    let keys = ["a", "missing", "b", "n", "c", "d", "e", "f", "g", "h"];
    let answers = source.load_many(&keys).await;
    assert_eq!(
        shown(&answers).join(" "),
        "A 404 \0\u{fffd} 404 C D E F G H"
    );
    assert_eq!(answers[2].as_ref().unwrap().as_bytes(), [0, 0xff]);
    {
        // One connection did it all, one query per chunk of 3, 3, 3 and 1.
        let idle = source.idle.lock().unwrap();
        assert_eq!(idle.len(), 1);
        let expanded = source.query_many.as_ref().unwrap();
        assert_eq!(
            expanded.expand(3),
            "SELECT id, body FROM pages WHERE id IN (?,?,?) ORDER BY id DESC"
        );
        assert_eq!(expanded.expand(1), many);
        assert_eq!(runs(&idle[0], &expanded.expand(3)), 3);
        assert_eq!(runs(&idle[0], &expanded.expand(1)), 1);
        assert_eq!(runs(&idle[0], "SELECT body FROM pages WHERE id = ?"), 0);
    }

    // A single load still uses `query`; integer keys match their text.
    assert_eq!(shown(&[source.load("b").await]), ["\0\u{fffd}"]);
    let nums = SqliteSource::new(
        &path,
        "SELECT word FROM nums WHERE id = ?",
        Some("SELECT id, word FROM nums WHERE id IN (?)"),
    )
    .unwrap();
    assert_eq!(
        shown(&nums.load_many(&["2", "3", "1"]).await),
        ["two", "404", "one"]
    );
    let _ = std::fs::remove_file(&path);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_batches_without_query_many_run_query_per_key_on_one_connection() {
    use peercache::Loader;
    let path = sqlite_database("single");
    let query = "SELECT body FROM pages WHERE id = ?";
    let source = SqliteSource::new(&path, query, None).unwrap();
    let answers = source.load_many(&["c", "n", "missing", "a"]).await;
    assert_eq!(shown(&answers), ["C", "404", "404", "A"]);
    let idle = source.idle.lock().unwrap();
    assert_eq!(idle.len(), 1);
    assert_eq!(runs(&idle[0], query), 4);
    drop(idle);
    let _ = std::fs::remove_file(&path);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_query_many_is_checked_at_start_naming_the_field() {
    let path = sqlite_database("checks");
    let query = "SELECT body FROM pages WHERE id = ?";
    for (many, expected) in [
        (
            "SELECT id, body FROM pages WHERE id = ?",
            "holds `(?)` 0 times",
        ),
        (
            "SELECT id, body FROM pages WHERE id IN (?) OR id IN (?)",
            "holds `(?)` 2 times",
        ),
        (
            "SELECT body FROM pages WHERE id IN (?)",
            "returns 1 column: it needs two",
        ),
        (
            "SELECT id, body FROM nowhere WHERE id IN (?)",
            "no such table",
        ),
        (
            "SELECT id, body FROM pages WHERE id IN (?) AND body = ?",
            "has 2 parameters",
        ),
        (
            "SELECT id, body FROM pages WHERE id = ? AND body <> '(?)'",
            "is not its parameter",
        ),
    ] {
        let error = SqliteSource::new(&path, query, Some(many))
            .err()
            .unwrap_or_else(|| panic!("{many} was taken"));
        assert!(
            error.starts_with(&format!("query_many {many:?}")) && error.contains(expected),
            "{many}: {error}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn origin_protection_keys_parse_and_build_and_wrong_ones_are_named() {
    let config: Config = toml::from_str(
        r#"
        [[group]]
        name = "pages"
        source = "files"
        dir = "."
        stale_while_revalidate = "30s"
        stale_if_error = "1h"
        cache_not_found = "10s"
        max_concurrent_loads = 4
        load_admission_wait = "0"
        origin_breaker = 5
        origin_breaker_cool_down = "2s"
        "#,
    )
    .unwrap();
    assert_eq!(
        config.groups[0].protection,
        Protection {
            stale_while_revalidate: Some("30s".to_owned()),
            stale_if_error: Some("1h".to_owned()),
            cache_not_found: Some("10s".to_owned()),
            max_concurrent_loads: Some(4),
            load_admission_wait: Some("0".to_owned()),
            origin_breaker: Some(5),
            origin_breaker_cool_down: Some("2s".to_owned()),
        }
    );
    let node = peercache::Node::new();
    let defaults = flags_defaults(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(5),
    );
    config
        .build(Path::new("c.toml"), &node, &defaults, 64 << 20)
        .unwrap();
    assert!(node.group("pages").is_some());
    // A wrong value is named, with its group.
    let built = |group: &str| {
        let config: Config = toml::from_str(&format!(
            "[[group]]\nname = \"g\"\nsource = \"files\"\ndir = \".\"\n{group}\n"
        ))
        .unwrap();
        config
            .build(
                Path::new("c.toml"),
                &peercache::Node::new(),
                &defaults,
                64 << 20,
            )
            .unwrap_err()
            .to_string()
    };
    let error = built("stale_if_error = \"soon\"");
    assert!(
        error.contains("group \"g\": stale_if_error: \"soon\" is not a duration"),
        "{error}"
    );
    let error = built("load_admission_wait = \"1s\"");
    assert!(
        error.contains("load_admission_wait without max_concurrent_loads"),
        "{error}"
    );
    let error = built("origin_breaker_cool_down = \"1s\"");
    assert!(
        error.contains("origin_breaker_cool_down without origin_breaker"),
        "{error}"
    );
    let error = built("max_concurrent_loads = 0");
    assert!(
        error.contains("max_concurrent_loads: must be at least 1"),
        "{error}"
    );
    let error =
        refusal("name = \"g\"\nsource = \"files\"\ndir = \".\"\nmax_concurrent_loads = \"many\"");
    assert!(error.contains("max_concurrent_loads"), "{error}");
}

#[test]
fn a_group_breaker_or_cap_takes_the_flags_cool_down_and_wait() {
    use std::time::Duration;
    let defaults = flags_defaults(Duration::from_millis(250), Duration::from_secs(9));
    let protection = Protection {
        origin_breaker: Some(4),
        max_concurrent_loads: Some(8),
        ..Protection::default()
    };
    let node = peercache::Node::new();
    let builder = protection
        .apply(node.group_builder("g"), &defaults)
        .unwrap();
    let shown = format!("{builder:?}");
    assert!(shown.contains("failures: 4, cool_down: 9s"), "{shown}");
    assert!(shown.contains("limit: 8, wait: 250ms"), "{shown}");
}

/// The flags' group settings with nothing set but the two waits
/// (`--load-admission-wait`, `--origin-breaker-cool-down`).
fn flags_defaults(
    admission_wait: std::time::Duration,
    cool_down: std::time::Duration,
) -> crate::plan::GroupDefaults {
    crate::plan::GroupDefaults {
        cache_bytes: 1 << 20,
        ttl: None,
        load_timeout: None,
        admission: None,
        breaker: None,
        waits: (admission_wait, cool_down),
        stale_while_revalidate: None,
        stale_if_error: None,
        cache_not_found: None,
        key_in_traces: peercache::KeyInTraces::Plain,
        change_timeout: peercache::DEFAULT_CHANGE_TIMEOUT,
        hot_max_age: peercache::DEFAULT_HOT_MAX_AGE,
    }
}
