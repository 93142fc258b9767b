"""muselq_sb.pretrain."""
