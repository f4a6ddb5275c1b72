"""Pure decisions: no kopf, kubernetes, boto3 or network imports (enforced by import-linter)."""
