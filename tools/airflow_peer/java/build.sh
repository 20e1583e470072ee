#!/bin/sh
# Build tools/airflow_peer/java/JavaPeer.java into OUT_DIR/java-peer.jar (offline: javac and jar
# from a JDK 17, no Maven, no dependencies). The manifest carries what Airflow's JavaCoordinator
# reads from a JAR under jars_root: Main-Class and Airflow-Supervisor-Schema-Version.
# Prints the JAR's path.  Usage: build.sh OUT_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_DIR}
classes="$out/classes"
mkdir -p "$classes"
javac -d "$classes" "$here/JavaPeer.java"
printf 'Main-Class: JavaPeer\nAirflow-Supervisor-Schema-Version: 2026-06-16\n' > "$out/manifest.txt"
jar --create --file "$out/java-peer.jar" --manifest "$out/manifest.txt" -C "$classes" .
echo "$out/java-peer.jar"
