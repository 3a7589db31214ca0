"""A vault's model side as the download modules see it: state dir, models folder, log.

Vault(tmp_path / "vault").args(downloads) are aria2_batch's arguments for it; .dest(name)
a destination under models/checkpoints; .every_file() what is on disk, scratch files included;
.staged() the partial downloads in staging.
"""

from pathlib import Path


class Vault:
    def __init__(self, root):
        self.root = Path(root)
        self.state = self.root / ".state/models"
        self.models = self.root / "models"
        self.log = self.root / "logs/models.log"

    def args(self, downloads, **extra):
        args = {"state_dir": str(self.state), "log_file": str(self.log), "downloads": downloads, "retry_wait": 1}
        args.update(extra)
        return args

    def dest(self, name, subdir="checkpoints"):
        return str(self.models / subdir / name)

    def every_file(self):
        return [p for p in self.root.rglob("*") if p.is_file()]

    def staged(self):
        """Partial downloads in staging (aria2c's control files and the part journals left out)."""
        staging = self.state / "staging"
        return (
            sorted(p for p in staging.iterdir() if not p.name.endswith((".aria2", ".parts")))
            if staging.exists()
            else []
        )
