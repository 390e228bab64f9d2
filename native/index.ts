/**
 * native/'s public surface: the loader of the one addon whose halves nsm/, vsock/ and init/ type and use
 * (the C helpers they share, common.c, are compiled into it). Other folders import only this file.
 */

export { ADDON_PATH, NativeAddonError, PACKAGE_NAME, findPackageRoot, loadNativeAddon, type NativeAddon } from './addon.js';
