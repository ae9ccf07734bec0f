//! Reading labeled text files, label maps and splits.
