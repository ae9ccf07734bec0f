//! The `bertfit` binary: parses flags, runs a command, prints errors with their causes and maps them to
//! exit codes (0 success, 2 bad usage or input, 1 other failure, 130 interrupted).

mod args;
mod bench;
mod commands;
mod gpu;
mod pretrain;
mod progress;
mod ranges;
mod serve;
mod settings;
mod shard;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc keeps freed tensor buffers for reuse; glibc returns large blocks to the kernel and pays for
/// zeroed pages on every training step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<bertfit::Error>() {
        Some(bertfit::Error::Interrupted) => 130,
        Some(e) if e.is_user_error() => 2,
        _ => 1,
    }
}

/// mimalloc's `purge_delay` option (v2 option index): -1 keeps freed pages mapped for reuse instead of
/// returning them to the kernel after 10 ms. Training frees and reallocates the same large activation
/// buffers every step; without this each step re-faults and re-zeroes them (about 24 % of an S-shape step).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // SAFETY: plain option setter of the allocator, called before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // candle runs its element-wise ops (mostly the gradient adds of its backward pass) on a pool of its
    // own, sized once from CANDLE_NUM_THREADS when first used, whose threads spin after each op and take
    // cores from the workers of our kernels. Those ops are memory-bound: on the calling thread a MiniLM
    // train step measured 7 % faster (1690-1715 ms against 1780-1990 ms). candle has no API for this, so
    // the variable is set here, once, before any thread exists; a user's setting wins. Our own threads
    // are the `Runtime`'s pool (`--threads`), not an environment variable.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
