// The RxJS pieces the event stream and the actors use, imported from their own modules: rxjs's
// index loads all of its 220 CommonJS modules (about 100 ms of CPU at every start on a busy
// 2-core machine), these need about 55. The `rxjs/internal/*` paths are in rxjs's exports map;
// after an rxjs upgrade, this file is the one place to check.
export { BehaviorSubject } from 'rxjs/internal/BehaviorSubject';
export { firstValueFrom } from 'rxjs/internal/firstValueFrom';
export { Observable } from 'rxjs/internal/Observable';
export { combineLatest } from 'rxjs/internal/observable/combineLatest';
export { concat } from 'rxjs/internal/observable/concat';
export { defer } from 'rxjs/internal/observable/defer';
export { from } from 'rxjs/internal/observable/from';
export { concatMap } from 'rxjs/internal/operators/concatMap';
export { filter } from 'rxjs/internal/operators/filter';
export { Subject } from 'rxjs/internal/Subject';
export { Subscription } from 'rxjs/internal/Subscription';
