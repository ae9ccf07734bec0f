//! A run's shape: micro-batches per epoch, optimizer updates in all, and epochs to run (`max_steps`
//! overrides the epoch count), from the data size and the batch settings. Shared by fine-tuning and
//! pretraining.

/// The run's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Epochs to run.
    pub epochs: usize,
    /// Optimizer updates in all.
    pub total_steps: usize,
    /// Micro-batches per epoch.
    pub batches_per_epoch: usize,
}

impl Plan {
    /// The plan for `examples` examples (at least one) in micro-batches of `batch_size`, `grad_accum` per
    /// update, each epoch ending with an update.
    pub fn new(examples: usize, batch_size: usize, grad_accum: usize, epochs: usize, max_steps: Option<usize>) -> Plan {
        let batches_per_epoch = examples.div_ceil(batch_size);
        let updates_per_epoch = batches_per_epoch.div_ceil(grad_accum).max(1);
        let total_steps = max_steps.unwrap_or(updates_per_epoch * epochs);
        let epochs = max_steps.map_or(epochs, |m| m.div_ceil(updates_per_epoch));
        Plan { epochs, total_steps, batches_per_epoch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_and_updates_follow_the_batches_and_max_steps() {
        // 10 examples, batches of 4: 3 micro-batches, 2 updates per epoch with accumulation 2
        assert_eq!(Plan::new(10, 4, 2, 3, None), Plan { epochs: 3, total_steps: 6, batches_per_epoch: 3 });
        assert_eq!(Plan::new(10, 4, 2, 3, Some(5)), Plan { epochs: 3, total_steps: 5, batches_per_epoch: 3 });
        assert_eq!(Plan::new(10, 4, 1, 1, Some(7)), Plan { epochs: 3, total_steps: 7, batches_per_epoch: 3 });
    }
}
