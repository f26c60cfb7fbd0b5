//! `hsconas device list|show`.

use clap::{Args, Subcommand};
use hsconas_devices::DeviceProfile;
use hsconas_foundation::outln;

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List the shipped device profiles.
    List(ListArgs),
    /// Print one device profile (shipped name or path to a .toml file), validated.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Shipped profile name (local-cpu, xeon-gold-6136, gv100, jetson-xavier) or a .toml file.
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::List(args) => {
            let profiles = DeviceProfile::shipped_names()
                .into_iter()
                .map(DeviceProfile::find)
                .collect::<Result<Vec<_>, _>>()?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&profiles)?)?;
            } else {
                for p in profiles {
                    outln!("{p}")?;
                }
            }
        }
        DeviceCommand::Show(args) => {
            let profile = DeviceProfile::find(&args.name)?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&profile)?)?;
            } else {
                outln!("{profile}")?;
                if !profile.notes.is_empty() {
                    outln!("notes: {}", profile.notes)?;
                }
            }
        }
    }
    Ok(())
}
