//! `visorsim cache [path|size|clean]`: where the payload cache is, how much
//! it holds, and removing it. Only visorsim's cache files
//! (`visorsim_image::payload::is_cache_file_name`) are counted or removed:
//! never anything else in the directory, nor the directory itself.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::HumanBytes;
use visorsim_image::payload::{cache_files, default_cache_dir};

use crate::failure::{Context, Failure, Status};

/// Arguments of `visorsim cache`.
#[derive(Args, Debug)]
pub struct CacheArgs {
    /// What to do (default: size).
    #[command(subcommand)]
    action: Option<Action>,
    /// The cache directory (default: $VISORSIM_CACHE_DIR, else $XDG_CACHE_HOME/visorsim or ~/.cache/visorsim).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Print the cache directory.
    Path,
    /// Print the cache directory, its number of files and their size.
    Size,
    /// Remove visorsim's cache files (nothing else in the directory).
    Clean,
}

/// Runs `visorsim cache`.
pub fn run(args: CacheArgs) -> Result<Status, Failure> {
    let dir = args.cache_dir.or_else(default_cache_dir).ok_or_else(|| {
        Failure::msg("No cache directory: set $VISORSIM_CACHE_DIR, $XDG_CACHE_HOME or $HOME, or give --cache-dir")
    })?;
    let action = args.action.unwrap_or(Action::Size);
    if action == Action::Path {
        println!("{}", dir.display());
        return Ok(Status::Success);
    }
    let files = cache_files(&dir).context(|| format!("Reading the cache directory {}", dir.display()))?;
    let bytes: u64 = files.iter().map(|(_, size)| size).sum();
    match action {
        Action::Size => {
            println!("{}: {} files, {}", dir.display(), files.len(), HumanBytes(bytes));
            if !files.is_empty() {
                println!("remove them with: visorsim cache clean");
            }
        }
        _ => {
            for (path, _) in &files {
                std::fs::remove_file(path).context(|| format!("Removing {}", path.display()))?;
            }
            println!("{}: removed {} files, {}", dir.display(), files.len(), HumanBytes(bytes));
        }
    }
    Ok(Status::Success)
}
