"""What every task shares: errors, the base LightningModule, checkpoints and resume, batching, predictions."""
