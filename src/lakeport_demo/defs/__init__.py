"""The demo's defs folder: one lakeport.LakeportDbtComponent (lakehouse/defs.yaml)."""
