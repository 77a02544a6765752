//! Reading a main file and its includes, merged as Salt merges them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::glob::glob;
use super::yaml::{self, Options};
use super::{ConfigError, ConfigWarning};
use crate::Value;

/// How deep `include:` may nest (a file including itself is refused
/// before this is reached; the limit guards against long chains).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Which daemon's config is read: the main file is `<config_dir>/master`
/// or `<config_dir>/minion`, and its drop-in directory `master.d/` or
/// `minion.d/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `master`.
    Master,
    /// `minion`.
    Minion,
}

impl Role {
    /// The main file's name in the config directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Minion => "minion",
        }
    }

    /// Salt's `default_include` for this role.
    pub fn default_include(self) -> &'static str {
        match self {
            Role::Master => "master.d/*.conf",
            Role::Minion => "minion.d/*.conf",
        }
    }
}

/// What to do when the config directory or the main file is missing.
///
/// Salt tolerates a missing file (it runs on defaults); a daemon started
/// with an explicit `-c` may prefer to refuse. The caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Missing {
    /// Fail with [`ConfigError::DirNotFound`] or [`ConfigError::FileNotFound`].
    Error,
    /// Use the defaults (plus any `<role>.d/*.conf` that exist) and report
    /// a [`ConfigWarning::MissingConfig`].
    UseDefaults,
}

/// One option's value and the file it came from (the last file that
/// changed it, when includes merged into it).
#[derive(Debug, Clone, PartialEq)]
pub struct RawOption {
    /// The value, as YAML gave it.
    pub value: Value,
    /// The file it came from.
    pub file: PathBuf,
}

/// The merged options of a main file and its includes, before typing.
///
/// Merging follows Salt's `master_config`/`minion_config`:
/// 1. the main file is read;
/// 2. `default_include` (default `<role>.d/*.conf`, relative to the
///    main file's directory) is expanded and its files are read in sorted
///    order; among them, later files override earlier ones **recursively**:
///    nested mappings merge key by key and lists are concatenated without
///    duplicates (`salt.utils.dictupdate.update(..., merge_lists=True)`);
/// 3. the main file's `include:` (a path/glob or a list of them) is
///    expanded the same way;
/// 4. the result of 2, then of 3, **replaces** the main file's top-level
///    keys (a plain `dict.update`: a mapping in an included file replaces
///    the main file's mapping of the same key, it does not merge into it).
///
/// An included file may itself have `include:`; its includes replace its
/// own top-level keys, as in Salt. Defaults are applied later, by the
/// typed configs, also as a plain replacement per top-level key.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    config_dir: PathBuf,
    main_file: PathBuf,
    main_file_read: bool,
    files: Vec<PathBuf>,
    options: BTreeMap<String, RawOption>,
    warnings: Vec<ConfigWarning>,
}

type Merged = BTreeMap<String, RawOption>;

impl RawConfig {
    /// Reads `<config_dir>/<role>` and its includes.
    ///
    /// # Errors
    /// [`ConfigError::DirNotFound`] / [`ConfigError::FileNotFound`] under
    /// [`Missing::Error`]; [`ConfigError::NotADirectory`];
    /// [`ConfigError::Io`], [`ConfigError::Yaml`] or
    /// [`ConfigError::NotAMapping`] for a file that cannot be used (an
    /// included file too: Brine does not skip a broken file silently);
    /// [`ConfigError::WrongType`] for an `include`/`default_include` that
    /// is not a path or list of paths.
    pub fn load(config_dir: &Path, role: Role, missing: Missing) -> Result<RawConfig, ConfigError> {
        let main_file = config_dir.join(role.file_name());
        let mut raw = RawConfig {
            config_dir: config_dir.to_owned(),
            main_file: main_file.clone(),
            ..RawConfig::default()
        };
        match std::fs::metadata(config_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(ConfigError::NotADirectory {
                    path: config_dir.to_owned(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match missing {
                    Missing::Error => Err(ConfigError::DirNotFound {
                        dir: config_dir.to_owned(),
                    }),
                    Missing::UseDefaults => {
                        raw.warnings.push(ConfigWarning::MissingConfig {
                            path: config_dir.to_owned(),
                        });
                        Ok(raw)
                    }
                };
            }
            Err(e) => return Err(ConfigError::io("reading", config_dir, e)),
        }
        let main = match std::fs::metadata(&main_file) {
            Ok(_) => {
                raw.main_file_read = true;
                raw.files.push(main_file.clone());
                yaml::read_file(&main_file)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match missing {
                Missing::Error => return Err(ConfigError::FileNotFound { path: main_file }),
                Missing::UseDefaults => {
                    raw.warnings.push(ConfigWarning::MissingConfig {
                        path: main_file.clone(),
                    });
                    Vec::new()
                }
            },
            Err(e) => return Err(ConfigError::io("reading", &main_file, e)),
        };
        raw.merge_main(main, role)?;
        Ok(raw)
    }

    /// Builds a config from `text` as if it were the content of the main
    /// file `file` (includes are resolved relative to `file`'s directory).
    /// Handy for tests and for tools that hold a config in memory.
    ///
    /// # Errors
    /// As [`RawConfig::load`] for the text and the files it includes.
    pub fn from_yaml_str(text: &str, file: &Path, role: Role) -> Result<RawConfig, ConfigError> {
        let mut raw = RawConfig {
            config_dir: file.parent().map(Path::to_owned).unwrap_or_default(),
            main_file: file.to_owned(),
            main_file_read: true,
            files: vec![file.to_owned()],
            ..RawConfig::default()
        };
        let main = yaml::parse(text, file)?;
        raw.merge_main(main, role)?;
        Ok(raw)
    }

    fn merge_main(&mut self, main: Options, role: Role) -> Result<(), ConfigError> {
        let main_file = self.main_file.clone();
        let mut top: Merged = main
            .into_iter()
            .map(|(k, value)| {
                (
                    k,
                    RawOption {
                        value,
                        file: main_file.clone(),
                    },
                )
            })
            .collect();
        let default_include = match top.get("default_include") {
            Some(opt) => patterns(opt, "default_include")?,
            None => vec![role.default_include().to_owned()],
        };
        let include = match top.get("include") {
            Some(opt) => patterns(opt, "include")?,
            None => Vec::new(),
        };
        let mut stack = vec![main_file.clone()];
        let from_default = self.include(&default_include, &main_file, false, &mut stack)?;
        top.extend(from_default);
        let from_include = self.include(&include, &main_file, true, &mut stack)?;
        top.extend(from_include);
        self.options = top;
        Ok(())
    }

    /// Salt's `include_config`: the files matched by `patterns`, merged
    /// recursively (later wins, lists concatenated).
    fn include(
        &mut self,
        patterns: &[String],
        orig: &Path,
        verbose: bool,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Merged, ConfigError> {
        let mut merged = Merged::new();
        let base = orig.parent().unwrap_or(Path::new(""));
        for pattern in patterns {
            let pattern = absolute_pattern(pattern, base);
            let matches = glob(&pattern);
            if matches.is_empty() && verbose {
                self.warnings.push(ConfigWarning::IncludeMatchedNothing {
                    pattern: pattern.clone(),
                    file: orig.to_owned(),
                });
            }
            for file in matches {
                if std::fs::metadata(&file).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                if stack.contains(&file) || stack.len() >= MAX_INCLUDE_DEPTH {
                    return Err(ConfigError::InvalidValue {
                        key: "include".to_owned(),
                        file: orig.to_owned(),
                        reason: format!("include loop through {}", file.display()),
                    });
                }
                debug!(path = %file.display(), "including configuration");
                let options = yaml::read_file(&file)?;
                self.files.push(file.clone());
                let mut opts: Merged = options
                    .into_iter()
                    .map(|(k, value)| {
                        (
                            k,
                            RawOption {
                                value,
                                file: file.clone(),
                            },
                        )
                    })
                    .collect();
                if let Some(nested) = opts.get("include") {
                    let nested = patterns_of(nested)?;
                    stack.push(file.clone());
                    let result = self.include(&nested, &file, verbose, stack);
                    stack.pop();
                    opts.extend(result?);
                }
                for (key, opt) in opts {
                    match merged.get_mut(&key) {
                        Some(existing) => {
                            deep_update(&mut existing.value, opt.value, true);
                            existing.file = opt.file;
                        }
                        None => {
                            merged.insert(key, opt);
                        }
                    }
                }
            }
        }
        Ok(merged)
    }

    /// The config directory this was loaded from.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The main file's path (whether or not it existed).
    pub fn main_file(&self) -> &Path {
        &self.main_file
    }

    /// Whether the main file existed and was read.
    pub fn main_file_read(&self) -> bool {
        self.main_file_read
    }

    /// Every file read, in the order read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The merged option `key`.
    pub fn get(&self, key: &str) -> Option<&RawOption> {
        self.options.get(key)
    }

    /// Every merged option, sorted by key.
    pub fn options(&self) -> impl Iterator<Item = (&str, &RawOption)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Sets `key` as if `source` (e.g. `command line`) had said so,
    /// replacing any value from the files (a `-l debug` flag, say).
    pub fn set(&mut self, key: &str, value: impl Into<Value>, source: impl Into<PathBuf>) {
        self.options.insert(
            key.to_owned(),
            RawOption {
                value: value.into(),
                file: source.into(),
            },
        );
    }

    /// Warnings gathered while reading (missing files, includes that
    /// matched nothing).
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }
}

fn absolute_pattern(pattern: &str, base: &Path) -> PathBuf {
    let expanded = match pattern.strip_prefix("~/") {
        Some(rest) => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(rest),
            None => PathBuf::from(pattern),
        },
        None => PathBuf::from(pattern),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

fn patterns(opt: &RawOption, key: &str) -> Result<Vec<String>, ConfigError> {
    patterns_of(opt).map_err(|_| ConfigError::WrongType {
        key: key.to_owned(),
        file: opt.file.clone(),
        expected: "a path or a list of paths",
        found: super::fields::kind(&opt.value),
    })
}

fn patterns_of(opt: &RawOption) -> Result<Vec<String>, ConfigError> {
    let wrong = || ConfigError::WrongType {
        key: "include".to_owned(),
        file: opt.file.clone(),
        expected: "a path or a list of paths",
        found: super::fields::kind(&opt.value),
    };
    match &opt.value {
        Value::Nil => Ok(Vec::new()),
        Value::Str(s) if s.is_empty() => Ok(Vec::new()),
        Value::Str(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(wrong))
            .collect(),
        _ => Err(wrong()),
    }
}

/// `salt.utils.dictupdate.update(dest, upd, recursive_update=True,
/// merge_lists)`: mappings merge key by key, lists concatenate without
/// duplicates when `merge_lists`, anything else is replaced.
pub(crate) fn deep_update(dest: &mut Value, upd: Value, merge_lists: bool) {
    match (dest, upd) {
        (Value::Map(dest_entries), Value::Map(upd_entries)) => {
            for (key, value) in upd_entries {
                match dest_entries.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, slot)) => {
                        let both_maps = matches!((&*slot, &value), (Value::Map(_), Value::Map(_)));
                        let both_lists =
                            matches!((&*slot, &value), (Value::Array(_), Value::Array(_)));
                        if both_maps || (both_lists && merge_lists) {
                            deep_update(slot, value, merge_lists);
                        } else {
                            *slot = value;
                        }
                    }
                    None => dest_entries.push((key, value)),
                }
            }
        }
        (Value::Array(dest_items), Value::Array(upd_items)) if merge_lists => {
            for item in upd_items {
                if !dest_items.contains(&item) {
                    dest_items.push(item);
                }
            }
        }
        (dest, upd) => *dest = upd,
    }
}
