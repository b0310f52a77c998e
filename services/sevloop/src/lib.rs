//! The `sevloop` binary's library: settings, the pipeline stage, the dispatcher, and the
//! commands that wire the crates under `services/` together.

pub mod app;
pub mod backtest;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dispatcher;
pub mod embedder;
pub mod evaluation;
pub mod pipeline;
pub mod runner;
pub mod sevs;
pub mod telemetry;
