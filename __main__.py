"""fraudstack: reads the stack config, wires the components, exports the outputs. Nothing else."""

import pulumi

from components.config import load_stack_config
from components.tags import required_tags

cfg = load_stack_config()
tags = required_tags(cfg)

pulumi.export("environment", cfg.environment)
pulumi.export("region", cfg.region)
pulumi.export("tags", tags)
