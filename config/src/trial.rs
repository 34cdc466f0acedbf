//! Try-and-revert as pure logic: a generation applied on trial must be
//! confirmed before its deadline or it is reverted to the generation before
//! it. Deadlines count on `CLOCK_BOOTTIME` within one boot (named by the
//! kernel's boot id), so neither a wrong wall clock nor an agent restart
//! moves them. The state is a small file ([`Trial::render`]) the agent
//! writes atomically before acting, so a restart or a reboot cannot lose a
//! trial.
//!
//! Across a reboot: a trial whose change needs one is booted once; in that
//! boot its window starts again (a reboot takes unknown time). A second
//! boot during the trial, or any boot during a trial that did not need one,
//! means it was not confirmed in time: revert at once.
//!
//! Must never: revert before the deadline in the boot it counts in, or let
//! a trial outlive a second boot.

/// One trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// The generation on trial.
    pub generation: u64,
    /// The generation to go back to; None: the empty document.
    pub previous: Option<u64>,
    /// The window, in ms.
    pub window_ms: u64,
    /// The tried change needs a reboot (it is booted once).
    pub needs_reboot: bool,
    /// The boot the deadline counts in.
    pub boot_id: String,
    /// `CLOCK_BOOTTIME` ms in that boot.
    pub deadline_ms: u64,
    /// A trial that needs a reboot has booted into its generation.
    pub booted: bool,
}

/// What the agent does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing until `deadline_ms` (CLOCK_BOOTTIME, this boot) or a confirm.
    Wait { deadline_ms: u64 },
    /// Apply `previous` as a new generation; reboot after, when `reboot`
    /// (the agent also reboots when the way back itself needs one).
    Revert { reboot: bool },
}

impl Trial {
    /// A trial of `generation` starting now, in boot `boot_id`.
    pub fn start(
        generation: u64,
        previous: Option<u64>,
        window_ms: u64,
        needs_reboot: bool,
        boot_id: &str,
        now_ms: u64,
    ) -> Trial {
        Trial {
            generation,
            previous,
            window_ms,
            needs_reboot,
            boot_id: boot_id.to_owned(),
            deadline_ms: now_ms.saturating_add(window_ms),
            booted: false,
        }
    }

    /// The agent (re)starts in boot `boot_id` at `now_ms`. The trial may
    /// change (a first boot into it): persist it before acting on the step.
    pub fn on_start(&mut self, boot_id: &str, now_ms: u64) -> Step {
        if boot_id == self.boot_id {
            return self.tick(now_ms);
        }
        if self.needs_reboot && !self.booted {
            self.booted = true;
            self.boot_id = boot_id.to_owned();
            self.deadline_ms = now_ms.saturating_add(self.window_ms);
            return Step::Wait {
                deadline_ms: self.deadline_ms,
            };
        }
        Step::Revert {
            reboot: self.needs_reboot,
        }
    }

    /// The clock reads `now_ms` in the trial's boot.
    pub fn tick(&self, now_ms: u64) -> Step {
        if now_ms < self.deadline_ms {
            Step::Wait {
                deadline_ms: self.deadline_ms,
            }
        } else {
            Step::Revert {
                reboot: self.needs_reboot && self.booted,
            }
        }
    }

    /// The state file's text.
    pub fn render(&self) -> String {
        format!(
            "generation={}\nprevious={}\nwindow_ms={}\nneeds_reboot={}\nboot_id={}\ndeadline_ms={}\nbooted={}\n",
            self.generation,
            self.previous.map_or("none".into(), |p| p.to_string()),
            self.window_ms,
            self.needs_reboot,
            self.boot_id,
            self.deadline_ms,
            self.booted,
        )
    }

    /// Parses [`Trial::render`]'s text; the error names the bad line.
    pub fn parse(text: &str) -> Result<Trial, String> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .ok_or_else(|| format!("no {k}= line"))
        };
        let num = |k: &str| {
            get(k)?
                .parse::<u64>()
                .map_err(|_| format!("{k}= is not a number"))
        };
        let flag = |k: &str| {
            get(k)?
                .parse::<bool>()
                .map_err(|_| format!("{k}= is not true or false"))
        };
        let generation = num("generation")?;
        let previous = match get("previous")? {
            "none" => None,
            p => Some(
                p.parse()
                    .map_err(|_| "previous= is not a number or none".to_owned())?,
            ),
        };
        Ok(Trial {
            generation,
            previous,
            window_ms: num("window_ms")?,
            needs_reboot: flag("needs_reboot")?,
            boot_id: get("boot_id")?.to_owned(),
            deadline_ms: num("deadline_ms")?,
            booted: flag("booted")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn live_trial_expires_in_its_boot() {
        let t = Trial::start(4, Some(3), 60_000, false, "b1", 1_000);
        assert_eq!(
            t.tick(60_999),
            Step::Wait {
                deadline_ms: 61_000
            }
        );
        assert_eq!(t.tick(61_000), Step::Revert { reboot: false });
        // An agent restart in the same boot keeps the deadline.
        let mut r = t.clone();
        assert_eq!(
            r.on_start("b1", 30_000),
            Step::Wait {
                deadline_ms: 61_000
            }
        );
        assert_eq!(r, t);
        // A reboot during a live trial: not confirmed in time.
        assert_eq!(r.on_start("b2", 5), Step::Revert { reboot: false });
    }

    #[test]
    fn reboot_trial_is_booted_once() {
        let mut t = Trial::start(4, None, 60_000, true, "b1", 1_000);
        // Booted into it: the window starts again in the new boot.
        assert_eq!(
            t.on_start("b2", 9_000),
            Step::Wait {
                deadline_ms: 69_000
            }
        );
        assert!(t.booted);
        assert_eq!(Trial::parse(&t.render()).unwrap(), t);
        // The agent restarts in that boot: same deadline.
        assert_eq!(
            t.on_start("b2", 10_000),
            Step::Wait {
                deadline_ms: 69_000
            }
        );
        assert_eq!(t.tick(69_000), Step::Revert { reboot: true });
        // A second boot: revert and reboot into the old generation.
        let mut again = t.clone();
        assert_eq!(again.on_start("b3", 1), Step::Revert { reboot: true });
        // Expired before the reboot ever happened: nothing took effect at boot.
        let never = Trial::start(4, None, 60_000, true, "b1", 0);
        assert_eq!(never.tick(60_000), Step::Revert { reboot: false });
    }

    #[test]
    fn state_file_round_trip_and_errors() {
        let t = Trial::start(12, Some(11), 5, true, "6c1f-0e4c", 7);
        assert_eq!(Trial::parse(&t.render()).unwrap(), t);
        let no_prev = Trial::start(1, None, 5, false, "", 7);
        assert_eq!(Trial::parse(&no_prev.render()).unwrap(), no_prev);
        assert!(
            Trial::parse("generation=x\n")
                .unwrap_err()
                .contains("generation")
        );
        let cut = &t.render()[..40];
        assert!(Trial::parse(cut).is_err());
    }

    #[derive(Debug, Clone)]
    enum Ev {
        /// Time passes in the current boot.
        Wait(u64),
        /// The agent restarts in the same boot.
        Restart,
        /// The node reboots (new boot id, the clock starts again).
        Reboot(u64),
    }

    proptest! {
        /// Whatever happens, a trial reverts no earlier than its window in
        /// the boot it counts in, never survives a second boot, and a
        /// revert reboots only a trial that had booted into its change.
        #[test]
        fn never_early_never_lost(
            needs_reboot in any::<bool>(),
            window in 1u64..100_000,
            evs in proptest::collection::vec(prop_oneof![
                (0u64..50_000).prop_map(Ev::Wait),
                Just(Ev::Restart),
                (0u64..5_000).prop_map(Ev::Reboot),
            ], 0..30),
        ) {
            let mut boot = 0u32;
            let mut now = 0u64;
            let mut t = Trial::parse(&Trial::start(2, Some(1), window, needs_reboot, "b0", now).render()).unwrap();
            let mut window_start = 0u64;
            let mut boots_into = 0u32;
            for ev in evs {
                let step = match ev {
                    Ev::Wait(d) => { now += d; t.tick(now) }
                    Ev::Restart => t.on_start(&format!("b{boot}"), now),
                    Ev::Reboot(up) => {
                        boot += 1;
                        now = up;
                        boots_into += 1;
                        let s = t.on_start(&format!("b{boot}"), now);
                        if matches!(s, Step::Wait { .. }) { window_start = now; }
                        s
                    }
                };
                // Persisted and read back, as the agent does.
                t = Trial::parse(&t.render()).unwrap();
                match step {
                    Step::Wait { deadline_ms } => {
                        prop_assert_eq!(deadline_ms, window_start + window);
                        prop_assert!(now < deadline_ms);
                        prop_assert!(boots_into == 0 || (needs_reboot && boots_into == 1));
                    }
                    Step::Revert { reboot } => {
                        prop_assert!(now >= window_start + window || boots_into > 0);
                        prop_assert_eq!(reboot, needs_reboot && boots_into > 0);
                        break;
                    }
                }
            }
        }
    }
}
